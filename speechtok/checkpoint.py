"""Checkpoint directories: `config.json` + `model.safetensors` (or Hugging Face-style shards with an index):
writing them, and reading and checking their files. Building a tokenizer from one is `models.loading`'s job.

No pickles: weights are safetensors only. Every failure is a CheckpointError naming the file and the problem.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .config import to_dict
from .errors import CheckpointError
from .fileio import atomic_path, read_json, read_state, write_text  # noqa: F401  (read_*: re-exported)
from .layers import fold_weight_norm

if TYPE_CHECKING:  # a checkpoint is written from a Tokenizer; loading one is models.loading's
    from .tokenizer import Tokenizer

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CARD_NAME = "README.md"


def save_checkpoint(tok: Tokenizer, directory: str | os.PathLike, card: str | None = None,
                    dtype: torch.dtype | None = None, dtype_modules: tuple[str, ...] = ()) -> Path:
    """Weights are written folded (no weight-norm hooks), without state that loading derives, and in `dtype`
    (e.g. torch.float16 halves the file; loading casts back to float32), only the weights of `dtype_modules`
    (top-level names, e.g. ("decoder",): a vocoder halved while the codes' k-means stays exact) when given; each
    file atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plain = fold_weight_norm(copy.deepcopy(tok).cpu())
    derived = tok.quantizer.derived_state_suffixes
    unknown = sorted(set(dtype_modules) - {name for name, _ in plain.named_children()})
    if unknown:
        raise ValueError(f"dtype_modules {unknown}: not modules of {tok.name}")
    state = {k: _cast(v.detach(), _stored_dtype(k, dtype, dtype_modules)).contiguous()
             for k, v in plain.state_dict().items() if not k.endswith(derived)}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    meta = {**checkpoint_config(tok), "weights_dtype": str(dtype or torch.float32).removeprefix("torch."),
            **({"weights_dtype_modules": list(dtype_modules)} if dtype_modules and dtype is not None else {})}
    write_text(directory / CONFIG_NAME, json.dumps(meta, indent=2) + "\n")
    if card is not None:
        write_text(directory / CARD_NAME, card)
    return directory


def _stored_dtype(key: str, dtype: torch.dtype | None, modules: tuple[str, ...]) -> torch.dtype | None:
    """`dtype` for a weight of `modules` (all when empty); None (as it is) for the rest."""
    return dtype if not modules or key.split(".", 1)[0] in modules else None


def _cast(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return t.to(dtype) if dtype is not None and t.is_floating_point() else t


def checkpoint_config(tok: Tokenizer) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "family": tok.family,
        "name": tok.name,
        "speechtok_version": __version__,
        "sample_rate": tok.sample_rate,
        "frame_rate": tok.frame_rate,
        "hop_length": tok.hop_length,
        "num_codebooks": tok.num_codebooks,
        "codebook_size": tok.codebook_size,
        "bitrate": tok.bitrate,
        "config_hash": tok.config_hash,
        "config": to_dict(tok.config),
    }


def read_config(directory: Path) -> dict:
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory (no such directory)")
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a checkpoint directory needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    meta = read_json(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {meta.get('format_version')!r} "
                              f"(this speechtok reads {FORMAT_VERSION})")
    return meta


def check_layout(skeleton: Tokenizer, headers: dict[str, tuple[str, list[int]]], directory: Path) -> None:
    """Every tensor the config needs is in the weights, with its shape and kind (float or integer)."""
    expected = skeleton.state_dict()
    derived = skeleton.quantizer.derived_state_suffixes
    missing, unexpected = _key_diff(expected, headers)
    missing = [k for k in missing if not k.endswith(derived)]
    if missing or unexpected:
        raise CheckpointError(f"{directory}: weights do not match {CONFIG_NAME} "
                              f"(missing {_few(missing)}, unexpected {_few(unexpected)})")
    for key, (dtype, shape) in headers.items():
        want = expected[key]
        if list(want.shape) != shape:
            raise CheckpointError(f"{directory}: tensor {key} is {shape} in the weights but {list(want.shape)} "
                                  f"in {CONFIG_NAME}")
        is_float = dtype.startswith(("F", "BF"))
        if is_float != want.is_floating_point() and want.dtype != torch.bool:
            raise CheckpointError(f"{directory}: tensor {key} is {dtype} in the weights; {CONFIG_NAME} needs "
                                  f"{str(want.dtype).removeprefix('torch.')}")


def tensor_headers(files: list[Path]) -> dict[str, tuple[str, list[int]]]:
    """{key: (safetensors dtype, shape)} from the files' headers, without reading a tensor."""
    out = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                for k in f.keys():
                    piece = f.get_slice(k)
                    out[k] = (piece.get_dtype(), list(piece.get_shape()))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupt safetensors file ({_first_line(e)})") from None
    return out


def weight_files(directory: Path) -> list[Path]:
    """The weight files: `model.safetensors`, or the shards an index names, each inside the directory."""
    index = directory / INDEX_NAME
    if not index.is_file():
        if not (directory / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"{directory / WEIGHTS_NAME}: missing")
        return [directory / WEIGHTS_NAME]
    try:
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
        raise CheckpointError(f"{index}: corrupt index ({e})") from None
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{index}: shard {name!r} is not a file name inside the checkpoint directory")
    return [directory / name for name in names]


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        part = _read_safetensors(path)
        _check_finite(part, path)
        state.update(part)
    return state


def _check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """NaN or inf weights (a diverged run, a bad conversion) would load and give every input the same codes."""
    for key, t in state.items():
        if t.is_floating_point() and not _all_finite(t):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: tensor {key} has {bad} NaN or infinite values of {t.numel()}; "
                                  "the weights are unusable (export them again from a good training step)")


def _all_finite(t: torch.Tensor) -> bool:
    """numpy's check: torch's isfinite on CPU half tensors costs 50x more (300 ms for the bundled codec), a third of
    a one-file encode's start-up; bfloat16, which numpy lacks, goes through torch."""
    if t.dtype == torch.bfloat16:
        return bool(torch.isfinite(t).all())
    return bool(np.isfinite(t.numpy()).all())


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({_first_line(e)})") from None


def _key_diff(expected: dict, got: dict) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def _few(keys: list[str]) -> str:
    return "none" if not keys else ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
