"""Validation during training: every `validation.every` steps, the exported model (EMA weights when the run keeps
them) runs on a fixed dev subset; its metrics go to `run_dir/validation.csv` and a few decoded utterances to
`run_dir/samples/step-N/`, so a run's progress can be read and heard while it trains.

The subset is a pure function of the config: the dev items sorted by path, `num_items` of them evenly spaced
(so several speakers), each cut to its first `max_seconds`. Reconstruction tasks are scored by `reconstruction`
(mel distance, and PESQ/STOI when the `eval` extra is installed); a task that does not reconstruct audio
overrides `Task.validate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..audio import load, write
from ..corpora import collect_items
from ..errors import AudioError, one_line
from .data import DataConfig

log = logging.getLogger("speechtok.train")


@dataclass(frozen=True)
class ValidationConfig:
    """every: validate every N steps (0: never). sources: manifests or directories; empty means the training
    data's sources. splits: which manifest split to read (directories are taken whole)."""

    every: int = 0
    sources: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("dev",)
    num_items: int = 8
    max_seconds: float = 4.0
    samples: int = 2  # decoded utterances saved at each validation
    metrics: tuple[str, ...] = ("mel", "pesq_wb", "stoi")

    def __post_init__(self) -> None:
        for name in ("sources", "splits", "metrics"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.every < 0 or self.num_items <= 0 or self.max_seconds <= 0:
            raise ValueError("validation: every >= 0, num_items > 0 and max_seconds > 0")


@dataclass
class Validation:
    metrics: dict[str, float]
    samples: dict[str, Tensor]  # utterance name -> decoded audio [T], at `sample_rate`
    sample_rate: int


def dev_subset(cfg: ValidationConfig, data: DataConfig) -> list[tuple[str, Tensor]]:
    """(name, mono audio [T] at the training rate) for the fixed dev items; unreadable files are logged, skipped."""
    sources = cfg.sources or data.sources
    items = sorted(collect_items(sources, data.root, cfg.splits, skip_missing=True), key=lambda it: str(it.path))
    if not items:
        raise ValueError(f"validation: no {'/'.join(cfg.splits)} audio in {list(sources)}")
    picks = np.linspace(0, len(items) - 1, min(cfg.num_items, len(items))).round().astype(int)
    subset, limit = [], round(cfg.max_seconds * data.sample_rate)
    for i in dict.fromkeys(picks.tolist()):
        try:
            wav = load(items[i].path, data.sample_rate)[0, 0, :limit]
        except AudioError as e:
            log.warning("validation: skipping %s", one_line(e))
            continue
        subset.append((items[i].path.stem, wav))
    return subset


def reconstruction(tokenizer, subset: list[tuple[str, Tensor]], metrics: tuple[str, ...], samples: int,
                   device: torch.device) -> Validation:
    """Encode and decode each dev utterance; the mean of each metric (those whose package is missing are left
    out, with a warning)."""
    from ..eval.metrics import get_metric

    tokenizer = tokenizer.to(device)
    scorers = {name: get_metric(name) for name in metrics}
    scores, decoded = {}, {}
    for utt, wav in subset:
        with torch.inference_mode():
            out = tokenizer.decode(tokenizer.encode(wav.to(device), tokenizer.sample_rate))[0, 0].float().cpu()
        if len(decoded) < samples:
            decoded[utt] = out
        ref, deg = wav.numpy(), out[: wav.shape[-1]].numpy()
        for name, metric in list(scorers.items()):
            try:
                for column, value in metric.score(ref, deg, tokenizer.sample_rate, {}).items():
                    scores.setdefault(column, []).append(value)
            except ImportError as e:
                log.warning("validation: %s left out (%s)", name, one_line(e))
                del scorers[name]
    return Validation({f"val/{k}": float(np.nanmean(v)) for k, v in scores.items()}, decoded,
                      tokenizer.sample_rate)


def save_samples(run_dir: Path, step: int, result: Validation, references: dict[str, Tensor]) -> Path:
    """Decoded audio to samples/step-N/<utt>.wav; each utterance's reference once, to samples/reference/."""
    folder = run_dir / "samples" / f"step-{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    for utt, wav in result.samples.items():
        write(folder / f"{utt}.wav", wav, result.sample_rate)
        ref = run_dir / "samples" / "reference" / f"{utt}.wav"
        if not ref.is_file() and utt in references:
            ref.parent.mkdir(parents=True, exist_ok=True)
            write(ref, references[utt], result.sample_rate)
    return folder
