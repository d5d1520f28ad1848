"""Unit runs: de-duplicated HuBERT units for LM training (the tokenizer is `speechtok.models.hubert_units`).

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

import torch
from torch import Tensor

from ..codes import CODES_FORMAT_VERSION, Codes
from ..errors import CodesError

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

        from ..fileio import atomic_path

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
