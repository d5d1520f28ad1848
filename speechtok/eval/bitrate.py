"""Bitrate and codebook statistics of codes.

- nominal bitrate: frame rate x sum over the codebooks used of log2(codebook size): what the codes cost
  stored as fixed-width integers;
- effective bitrate: frame rate x sum of the measured per-codebook entropies (bits per code, from the code
  histogram over the evaluated utterances): what an ideal entropy coder of independent codes would need;
- usage: the share of a codebook's entries used at least once; perplexity: 2^entropy, the number of equally
  likely codes with that entropy.

Entropies are plug-in estimates from the histogram, biased low when there are few frames per code (a 1024-code
book needs well over 10^4 frames): compare them on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["nominal_bitrate", "effective_bitrate", "code_counts", "CodebookStats", "codebook_stats"]


@dataclass(frozen=True)
class CodebookStats:
    entropy_bits: list[float]  # [Q] bits per code
    perplexity: list[float]  # [Q] 2 ** entropy
    usage: list[float]  # [Q] share of the codebook used at least once
    frames: int  # codes counted per codebook


def nominal_bitrate(frame_rate: float | Sequence[float], codebook_sizes: Sequence[int]) -> float:
    """Bits per second: frame_rate x sum of log2(size) over the codebooks used. `frame_rate` may give each
    codebook its own rate (SNAC's coarse codebooks are repeated onto the finest grid: they count at their own)."""
    rates = _rates(frame_rate, len(codebook_sizes))
    return float(sum(r * math.log2(k) for r, k in zip(rates, codebook_sizes)))


def effective_bitrate(frame_rate: float | Sequence[float], entropy_bits: Sequence[float]) -> float:
    """Bits per second: frame_rate x sum of the codebooks' entropies (bits per code); per-codebook rates allowed.
    A code repeated r times on the grid has the entropy of the code itself, so its own rate gives its bits."""
    rates = _rates(frame_rate, len(entropy_bits))
    return float(sum(r * h for r, h in zip(rates, entropy_bits)))


def _rates(frame_rate: float | Sequence[float], n: int) -> list[float]:
    rates = [float(frame_rate)] * n if isinstance(frame_rate, (int, float)) else [float(r) for r in frame_rate]
    if len(rates) != n:
        raise ValueError(f"{len(rates)} codebook rates for {n} codebooks")
    return rates


def code_counts(codes: Tensor | np.ndarray, codebook_size: int) -> np.ndarray:
    """codes [Q, T] or [B, Q, T] (no padding) -> counts [Q, codebook_size] (int64)."""
    c = torch.as_tensor(codes).long()
    if c.ndim == 3:
        c = c.transpose(0, 1).reshape(c.shape[1], -1)  # [B, Q, T] -> [Q, B*T]
    if c.ndim != 2:
        raise ValueError(f"codes must be [Q, T] or [B, Q, T], got shape {tuple(c.shape)}")
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= codebook_size):
        raise ValueError(f"codes out of range [0, {codebook_size})")
    offsets = torch.arange(c.shape[0])[:, None] * codebook_size
    flat = torch.bincount((c + offsets).flatten(), minlength=c.shape[0] * codebook_size)
    return flat.reshape(c.shape[0], codebook_size).numpy()


def codebook_stats(counts: np.ndarray, sizes: Sequence[int] | None = None) -> CodebookStats:
    """counts [Q, K] (summed `code_counts`) -> entropy, perplexity and usage of each codebook; `sizes`: each
    codebook's own size where they differ (usage is the share of its own entries)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    if (totals == 0).any():
        raise ValueError("a codebook has no codes counted")
    p = counts / totals
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    entropy = np.maximum(entropy, 0.0)
    return CodebookStats([float(h) for h in entropy], [float(2.0**h) for h in entropy],
                         [float(u) for u in (counts > 0).sum(axis=1) / np.asarray(sizes or [counts.shape[1]])],
                         int(totals[0, 0]))
