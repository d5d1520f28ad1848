"""Training crops paired with units computed once from whole files (a pre-tokenized dataset of the units model).

A unit vocoder must learn the units it will be given at inference, and those come from the whole file: Whisper
reads every input in a 30 s window, so the units of a 1 s crop differ from the same frames' units in its file
(measured on 24 train files of the bundled whisper-units: 46% of frames agree when the crop is read at its own
length, 54% when it is padded to 30 s alone). Encoding each crop in its file's window would cost a 30 s Whisper
pass per crop; `speechtok pretokenize` computes each file's units once instead, and this dataset cuts a crop and
its units at the same frame-aligned offset:

    speechtok pretokenize speechtok-whisper-units MANIFEST --split train -o runs/whisper-units/train-units
    speechtok train unit_vocoder ... task_config.unit_codes=runs/whisper-units/train-units

Crop k of an item starts at frame `crop_offset(F_i, frames, seed, epoch, i)` (sample hop x that frame), so a
crop's frame j is centred where the file's frame (offset + j) is, and the decoder's `frames x hop` samples
line up with the crop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..corpora import Item
from ..errors import ArgumentError
from .data import CropDataset, DataConfig, Key, _split_key, crop, crop_offset, from_pcm16


def read_units(directory: str | Path, tokenizer) -> dict[Path, np.ndarray]:
    """Units [F] int64 of each file of a pre-tokenized dataset of `tokenizer` (one codebook), by resolved path.

    ArgumentError when the dataset is not one, or was made by another tokenizer (config or weights)."""
    import pyarrow.dataset

    from ..pretokenize.run import META_NAME
    from ..tokenizer import weights_hash

    directory = Path(directory)
    try:
        meta = json.loads((directory / META_NAME).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArgumentError(f"{directory}: not a pre-tokenized dataset ({META_NAME}: {e})") from None
    ours = {"config_hash": tokenizer.config_hash, "weights_hash": weights_hash(tokenizer)}
    theirs = {k: meta.get(k) for k in ours}
    if theirs["config_hash"] == tokenizer.units_hash:  # made before a vocoder was added: the same units
        theirs["config_hash"] = tokenizer.config_hash
    if theirs != ours:
        raise ArgumentError(f"{directory}: units of another tokenizer ({theirs}; the units model's: {ours})")
    if meta.get("num_codebooks") != 1 or meta.get("dedup"):
        raise ArgumentError(f"{directory}: expected one codebook of frame-rate units (no --dedup)")
    table = pyarrow.dataset.dataset(directory, format="parquet").to_table(columns=["source_path", "codes"])
    paths = table.column("source_path").to_pylist()
    codes = table.column("codes").to_pylist()  # [N][1][F]
    return {Path(p).resolve(): np.asarray(c[0], dtype=np.int64) for p, c in zip(paths, codes)}


def unit_crop_dataset(directory: str | Path, tokenizer, data: DataConfig, seed: int) -> UnitCropDataset:
    """The crops of `data`'s items, each with its file's units from the pre-tokenized dataset `directory`."""
    return UnitCropDataset(data.items(), read_units(directory, tokenizer), data.sample_rate, data.segment_samples,
                           tokenizer.hop_length, seed, data.cache)


class UnitCropDataset(CropDataset):
    """`dataset[(epoch, i)]` -> (float32 `[1, frames x hop]`, int64 units `[frames]`) of item i's crop in that
    epoch; `segment_samples` is rounded down to whole frames."""

    def __init__(self, items: Sequence[Item], units: dict[Path, np.ndarray], sample_rate: int,
                 segment_samples: int, hop_length: int, seed: int = 0, cache: bool = True) -> None:
        self.hop_length, self.frames = hop_length, segment_samples // hop_length
        if self.frames < 1:
            raise ValueError(f"a crop of {segment_samples} samples holds no {hop_length}-sample frame")
        found = [units.get(Path(it.path).resolve()) for it in items]
        missing = [it.path for it, u in zip(items, found) if u is None]
        if missing:
            raise ArgumentError(f"{len(missing)} of {len(items)} training items have no units in the dataset "
                                f"(first: {missing[0]}): pre-tokenize the same manifests and splits")
        super().__init__(items, sample_rate, self.frames * hop_length, seed, cache)
        self.units = [u for u in found if u is not None]  # all of them, past the check

    def __getitem__(self, key: Key) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        epoch, index = _split_key(key, self.epoch, len(self.items))
        index, wav = self._readable_item(index)  # an unreadable item is served by the next readable one
        units = self.units[index]
        start = crop_offset(len(units), self.frames, self.seed, epoch, index)
        pcm = crop(wav, start * self.hop_length, self.segment_samples)
        frames = units[start:start + self.frames]
        if len(frames) < self.frames:  # a file shorter than a crop: its last unit, as the audio is zero-padded
            frames = np.pad(frames, (0, self.frames - len(frames)), mode="edge")
        return from_pcm16(pcm)[None], torch.from_numpy(frames)
