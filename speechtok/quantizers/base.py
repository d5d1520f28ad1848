"""The quantizer interface: continuous latents <-> integer codes. Knows nothing of encoders."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from torch import Tensor, nn


@dataclass
class QuantizeOut:
    z_q: Tensor  # [B, D, T] quantized latents (straight-through gradients in training)
    codes: Tensor  # [B, Q, T] int64; -1 marks codebooks dropped by quantizer dropout
    losses: dict[str, Tensor] = field(default_factory=dict)  # "vq/commitment", ...
    stats: dict[str, float] = field(default_factory=dict)  # logged, not trained on: "vq/resets_per_step", ...


class Quantizer(nn.Module, ABC):
    num_codebooks: int  # Q
    codebook_size: int
    # state_dict keys (by suffix) that loading recomputes from the rest: inference checkpoints leave them out
    derived_state_suffixes: tuple[str, ...] = ()

    @abstractmethod
    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizeOut:
        """Training path: z [B, D, T], mask [B, T] (True = valid) -> QuantizeOut."""

    @abstractmethod
    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """z [B, D, T] -> codes [B, n_q, T] (int64)."""

    @abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, q, T] with any q <= num_codebooks -> z_q [B, D, T]."""
