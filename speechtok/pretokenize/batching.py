"""Padded batches from a window of files: sorted by length, at most `batch_seconds` of padded audio,
`max_batch_size` items and 10% padding, the audio of a window in one buffer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..audio import too_short

MAX_PADDING = 0.1  # of a batch's padded samples, at most (bucket)


BATCH_SECONDS = {"cuda": 200.0, "cpu": 50.0}


def bucket(lengths: Sequence[int], max_samples: int, max_items: int, max_padding: float = MAX_PADDING
           ) -> list[list[int]]:
    """Positions of `lengths` grouped into batches, longest first. The next (shorter) item joins the current batch
    while the batch stays within `max_items` items, `max_samples` padded samples (items x its longest) and
    `max_padding` of padding (the fraction of the padded batch that is not audio); an item longer than
    `max_samples` is a batch alone."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    total = 0  # samples of audio in the current batch
    for i in order:
        if batches:
            n, longest = len(batches[-1]) + 1, lengths[batches[-1][0]]
            if n <= max_items and n * longest <= max_samples and total + lengths[i] >= (1 - max_padding) * n * longest:
                batches[-1].append(i)
                total += lengths[i]
                continue
        batches.append([i])
        total = lengths[i]
    return batches


@dataclass
class Loaded:
    index: int  # in the part's item list
    wav: Tensor | None  # [T] mono float32 at the tokenizer's rate; None when it failed
    duration_s: float  # of the file as stored
    error: str | None = None


@dataclass
class Batch:
    indices: list[int]
    wav: Tensor  # [B, 1, T] float32, zero past each item's length, T a whole number of frames
    lengths: Tensor  # [B] valid samples at the tokenizer's rate
    durations: list[float]


@dataclass
class Window:
    """`bucket_size` consecutive items of one shard, read, resampled and cut into padded batches, whose audio are
    views of one buffer `audio`."""

    indices: list[int]
    batches: list[Batch]
    failures: list[tuple[int, str]]
    audio: Tensor  # [N] float32: every batch's samples

    def __reduce__(self):
        # From a worker, each tensor costs a shared-memory handle that the receiver fetches over its own socket
        # connection (~15 ms); one buffer per window, not two tensors per batch, keeps that off the critical path
        specs = [(b.indices, b.wav.storage_offset(), tuple(b.wav.shape), b.lengths.tolist(), b.durations)
                 for b in self.batches]
        return Window.rebuild, (self.indices, specs, self.failures, self.audio)

    @staticmethod
    def rebuild(indices: list[int], specs: list[tuple], failures: list[tuple[int, str]], audio: Tensor) -> Window:
        batches = [Batch(ids, _view(audio, offset, shape), torch.tensor(lengths), durations)
                   for ids, offset, shape, lengths, durations in specs]
        return Window(indices, batches, failures, audio)

    def pin_memory(self) -> Window:  # DataLoader(pin_memory=True) calls this
        pinned = self.audio.pin_memory()
        for b in self.batches:
            b.wav = _view(pinned, b.wav.storage_offset() - self.audio.storage_offset(), tuple(b.wav.shape))
        self.audio = pinned
        return self


def _view(audio: Tensor, offset: int, shape: tuple[int, ...]) -> Tensor:
    """The contiguous [B, C, T] block of `audio` that starts `offset` elements into its storage."""
    _, c, t = shape
    return audio.as_strided(shape, (c * t, t, 1), offset)


class Bucketer:
    """collate_fn: a window of `Loaded` -> `Window` of padded batches (runs in the worker)."""

    def __init__(self, sample_rate: int, hop_length: int, max_samples: int, max_items: int,
                 min_samples: int | None = None, frame_name: str = "frame") -> None:
        """min_samples, frame_name: the tokenizer's shortest input (`Encoder.min_samples`; default one hop)."""
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.max_samples, self.max_items = max_samples, max_items
        self.min_samples, self.frame_name = min_samples or hop_length, frame_name

    def __call__(self, loaded: list[Loaded]) -> Window:
        failures, good = [], []
        for item in loaded:
            if item.wav is None:
                failures.append((item.index, item.error or "unreadable"))
            elif (reason := too_short(item.wav.numel(), self.sample_rate, self.min_samples, self.frame_name)):
                failures.append((item.index, reason))  # Tokenizer.encode's own limit, checked per item
            else:
                good.append(item)
        groups = bucket([g.wav.numel() for g in good], self.max_samples, self.max_items)
        shapes = [(len(group), 1, -(-max(good[i].wav.numel() for i in group) // self.hop_length) * self.hop_length)
                  for group in groups]
        # whole frames (encode need not copy them), in one buffer (see Window.__reduce__); numpy, as
        # audio.prepare, keeps torch's threads out of it
        flat = np.zeros(sum(b * t for b, _, t in shapes), np.float32)
        audio, batches, offset = torch.from_numpy(flat), [], 0
        for group, shape in zip(groups, shapes):
            members = [good[i] for i in group]
            wav = flat[offset : offset + shape[0] * shape[2]].reshape(shape)
            for row, m in enumerate(members):
                wav[row, 0, : m.wav.numel()] = m.wav.numpy()
            batches.append(Batch([m.index for m in members], _view(audio, offset, shape),
                                  torch.tensor([m.wav.numel() for m in members]), [m.duration_s for m in members]))
            offset += wav.size
        return Window([item.index for item in loaded], batches, failures, audio)


def default_batch_seconds(device: str | torch.device) -> float:
    """Padded seconds of audio per batch on `device` (see `BATCH_SECONDS`; other accelerators as CUDA)."""
    return BATCH_SECONDS["cpu" if torch.device(device).type == "cpu" else "cuda"]
