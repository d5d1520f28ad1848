"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math


def lr_factor(step: int, total: int, warmup: int = 0, kind: str = "cosine", min_ratio: float = 0.1,
              gamma: float = 0.999996) -> float:
    """Multiplier of the base learning rate at `step` (0-based).

    1. linear warm-up from 1/warmup to 1 over `warmup` steps;
    2. then `cosine` decays to `min_ratio` at `total`, `exponential` multiplies by `gamma` each step,
       `constant` stays at 1.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "exponential":
        return gamma ** (step - warmup)
    if kind == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}; use cosine, exponential or constant")
