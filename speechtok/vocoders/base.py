"""The decoder interface: quantized latents -> waveform. Knows nothing of encoders or quantizers."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class Decoder(nn.Module, ABC):
    hop_length: int  # output samples per input frame
    sampling_options: tuple[str, ...] = ()  # keyword options of forward that `Tokenizer.decode` passes on

    @abstractmethod
    def forward(self, z_q: Tensor) -> Tensor:
        """z_q [B, D, T_frames] -> wav [B, 1, T_frames * hop_length]."""

    @property
    @abstractmethod
    def receptive_field_frames(self) -> int:
        """Frames on each side that influence an output sample; chunked decoding overlaps by this."""
