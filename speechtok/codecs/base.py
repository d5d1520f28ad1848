"""The encoder interface every tokenizer family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class Encoder(nn.Module, ABC):
    """waveform `[B, 1, T_samples]` -> continuous latents `[B, D, T_frames]`."""

    hop_length: int  # input samples per output frame
    dim: int  # D

    @abstractmethod
    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """wav [B, 1, T] (T a multiple of hop_length), lengths [B] valid samples -> z [B, D, T // hop_length]."""

    @property
    @abstractmethod
    def receptive_field(self) -> int:
        """Input samples that influence one output frame (both sides together); chunked encoding overlaps by this."""
