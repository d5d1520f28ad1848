"""The HuBERT-units tokenizer: HuBERT features of one layer -> k-means units [B, 1, T] -> unit vocoder.

Timing differs from the conv codecs: T samples give floor((T - 400) / 320) + 1 frames (frame i reads samples
[320 i, 320 i + 400), so `Codes.offset` = 40 puts frame centres at 320 i + 200). Decoding gives 320 samples per
frame from sample 0, zero-padded to the original length.

De-duplication (for LM training) is an output option, not a change of what codes are: `deduplicate` turns an
item's unit sequence into runs (`units`, `run_lengths`); `UnitRuns.to_codes` gives back the exact `Codes`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .codecs.hubert import HubertEncoder
from .codes import CODES_FORMAT_VERSION, Codes
from .errors import CodesError
from .nn import lengths_to_mask
from .quantizers.kmeans import KMeans
from .tokenizer import Tokenizer
from .vocoders.base import Decoder


class UnitTokenizer(Tokenizer):
    encoder: HubertEncoder
    quantizer: KMeans

    def __init__(self, encoder: HubertEncoder, quantizer: KMeans, decoder: Decoder | None, **kwargs):
        super().__init__(encoder, quantizer, decoder, **kwargs)

    @property
    def layer(self) -> int:
        return self.encoder.layer

    def num_frames(self, num_samples: Tensor) -> Tensor:
        """[B] samples -> [B] frames: floor((T - 400) / 320) + 1."""
        return self.encoder.num_frames(torch.as_tensor(num_samples))

    def features(self, wav: Tensor | np.ndarray, sample_rate: int, layer: int | None = None,
                 lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """HuBERT features of `layer` (default: the units' layer) -> ([B, D, T_frames], frames [B])."""
        x, num_samples = self._input(wav, sample_rate, lengths, self.encoder.model.cfg.window, "HuBERT frame")
        return self._features(x, num_samples if lengths is not None else None, layer), self.num_frames(num_samples)

    def _features(self, x: Tensor, num_samples: Tensor | None, layer: int | None = None) -> Tensor:
        """x [B, 1, T] (a padded batch when `num_samples` are given) -> [B, D, T_frames]"""
        if num_samples is not None:  # zero past each item's end: batch padding must read as silence
            x = x * lengths_to_mask(num_samples.to(x.device), x.shape[-1])
        with torch.inference_mode():
            return self.encoder(x, None if num_samples is None else num_samples.to(x.device), layer=layer)

    def encode(self, wav: Tensor | np.ndarray, sample_rate: int, n_q: int | None = None,
               lengths: Tensor | None = None) -> Codes:
        """wav [T], [C, T] or [B, C, T] -> Codes [B, 1, floor((T - 400) / 320) + 1], offset 40 samples."""
        self._check_n_q(n_q)
        x, num_samples = self._input(wav, sample_rate, lengths, self.encoder.model.cfg.window, "HuBERT frame")
        feats = self._features(x, num_samples if lengths is not None else None)
        with torch.inference_mode():
            codes = self.quantizer.encode(feats)
        return Codes(codes=codes.cpu(), lengths=self.num_frames(num_samples).cpu(), sample_rate=self.sample_rate,
                     hop_length=self.hop_length, num_samples=num_samples.cpu(), offset=self.encoder.offset,
                     tokenizer=self.identity())

    def decode(self, codes: Codes | Tensor, *, steps: int | None = None, method: str | None = None) -> Tensor:
        """Codes [B, 1, T] -> wav [B, 1, T_samples] through the unit vocoder; zero-padded to the original length
        (the last < 400 samples of a file have no frame of their own). `steps` / `method` as `Tokenizer.decode`."""
        wav = super().decode(codes, steps=steps, method=method)
        if isinstance(codes, Codes) and codes.num_samples is not None:
            wav = torch.nn.functional.pad(wav, (0, max(0, int(codes.num_samples.max()) - wav.shape[-1])))
        return wav


# -- de-duplication --------------------------------------------------------------------------------------------


@dataclass
class UnitRuns:
    """One item's units with repeats collapsed: units [N] (no two neighbours equal), run_lengths [N] frames."""

    units: Tensor
    run_lengths: Tensor
    meta: dict = field(default_factory=dict)  # the source Codes' metadata (tokenizer, timing)

    def expand(self) -> Tensor:
        """-> the original units [T]"""
        return torch.repeat_interleave(self.units, self.run_lengths)

    def to_codes(self) -> Codes:
        m = self.meta
        ns = m.get("num_samples")
        units = self.expand()
        return Codes(codes=units[None, None], lengths=torch.tensor([units.numel()]),
                     sample_rate=int(m["sample_rate"]), hop_length=int(m["hop_length"]),
                     num_samples=None if ns is None else torch.tensor([int(ns)]), offset=int(m.get("offset", 0)),
                     tokenizer=dict(m.get("tokenizer", {})))

    def save(self, path: str | os.PathLike) -> Path:
        """safetensors with `units` and `run_lengths` (int32) and the metadata (`"deduplicated": true`)."""
        from safetensors.torch import save_file

        from .fileio import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({"units": self.units.int().contiguous(), "run_lengths": self.run_lengths.int().contiguous()},
                      str(tmp), metadata={"speechtok": json.dumps({**self.meta, "deduplicated": True})})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> UnitRuns:
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("speechtok", "{}"))
                if not meta.get("deduplicated") or not {"units", "run_lengths"} <= set(f.keys()):
                    raise CodesError(f"{path}: not a de-duplicated units file (no units / run_lengths)")
                units, runs = f.get_tensor("units").long(), f.get_tensor("run_lengths").long()
        except CodesError:
            raise
        except Exception as e:
            raise CodesError(f"{path}: unreadable units file ({' '.join(str(e).split())[:200]})") from None
        if meta.get("format_version") != CODES_FORMAT_VERSION:
            raise CodesError(f"{path}: unsupported codes format_version {meta.get('format_version')!r}")
        meta.pop("deduplicated")
        return cls(units, runs, meta)


def deduplicate(codes: Codes) -> UnitRuns:
    """Item 0 of single-codebook codes (trimmed to its length) -> its runs. Frame i of the original is unit j
    where j is the run holding it; sum(run_lengths) = the item's frames."""
    item = codes.item(0)
    if item.num_codebooks != 1:
        raise CodesError(f"de-duplication is for one codebook (units); these codes have {item.num_codebooks}")
    units, counts = torch.unique_consecutive(item.codes[0, 0], return_counts=True)
    return UnitRuns(units, counts, item.metadata())


def hubert_units_from(hubert: str | os.PathLike, layer: int, kmeans: str | os.PathLike,
                      name: str | None = None) -> UnitTokenizer:
    """A units tokenizer (no vocoder) from checkpoints users have: a HuBERT (Hugging Face directory or fairseq
    `.pt`) and k-means centroids (`.safetensors` or `.npy`; joblib files through `speechtok convert`)."""
    from .codecs.hubert_loading import load_hubert
    from .families import HubertUnitsConfig, build_hubert_units
    from .quantizers.kmeans import KMeansConfig, load_centroids

    model = load_hubert(hubert)
    centroids, _ = load_centroids(kmeans)
    cfg = HubertUnitsConfig(hubert=model.cfg, layer=layer,
                            kmeans=KMeansConfig(dim=centroids.shape[1], codebook_size=centroids.shape[0]))
    tok = build_hubert_units(cfg, name=name)
    tok.encoder.model.load_state_dict(model.state_dict())
    tok.quantizer.centroids.copy_(centroids)
    return tok.eval()
