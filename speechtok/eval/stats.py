"""Summaries of per-utterance scores: the mean and its 95% confidence interval (Student's t)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Summary", "mean_ci"]


@dataclass(frozen=True)
class Summary:
    mean: float
    ci95: tuple[float, float]  # the interval; equal to (mean, mean) for n = 1
    std: float  # sample standard deviation (ddof=1; 0 for n = 1)
    n: int

    def to_json(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def mean_ci(values: Sequence[float], level: float = 0.95) -> Summary | None:
    """Mean of the finite values and its `level` interval, mean +- t(level, n-1) * std / sqrt(n); None if none."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return Summary(mean, (mean, mean), 0.0, 1)
    std = float(x.std(ddof=1))
    half = _t_quantile((1 + level) / 2, x.size - 1) * std / math.sqrt(x.size)
    return Summary(mean, (mean - half, mean + half), std, int(x.size))


def _t_quantile(q: float, dof: int) -> float:
    try:
        from scipy.stats import t

        return float(t.ppf(q, dof))
    except ImportError:  # the normal quantile: a slightly narrower interval for small n
        from statistics import NormalDist

        return NormalDist().inv_cdf(q)
