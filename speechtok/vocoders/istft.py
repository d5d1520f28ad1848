"""Inverse STFT with 'same' padding: T frames -> exactly T * hop samples (torch.istft's centre padding
would give (T - 1) * hop). Overlap-add is a transposed conv-free `F.fold`, normalised by the window envelope."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ISTFT(nn.Module):
    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        if (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft - hop_length must be even for 'same' padding, got {n_fft} - {hop_length}")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.pad = (n_fft - hop_length) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: Tensor) -> Tensor:
        """spec [B, n_fft // 2 + 1, T] complex -> wav [B, T * hop_length]."""
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        num_frames = spec.shape[-1]
        size = (num_frames - 1) * self.hop_length + self.n_fft
        wav = self._overlap_add(frames, size)
        envelope = self._overlap_add(self.window.square()[None, :, None].expand(1, -1, num_frames), size)
        wav = wav[:, self.pad : size - self.pad]
        envelope = envelope[:, self.pad : size - self.pad]
        return wav / envelope.clamp(min=1e-11)

    def _overlap_add(self, frames: Tensor, size: int) -> Tensor:
        """frames [B, n_fft, T] -> [B, size]"""
        out = F.fold(frames, output_size=(1, size), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        return out[:, 0, 0, :]
