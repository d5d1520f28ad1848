"""Discriminators for GAN decoder training: HiFi-GAN's multi-period discriminator and a multi-resolution
complex-STFT discriminator (as DAC and EnCodec), bundled by `Discriminators`.

The period discriminators fold the waveform into [T / p, p] and look at every p-th sample, which catches
periodic (pitch) structure; the STFT discriminators look at spectro-temporal detail at several window
sizes. Each sub-discriminator returns its logits and the feature map after every layer, which the
feature-matching loss in `losses.py` compares between real and generated audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..layers import autocast_off

LRELU_SLOPE = 0.1  # HiFi-GAN's


@dataclass(frozen=True)
class DiscriminatorConfig:
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)  # HiFi-GAN's: primes, so that the periods overlap little
    period_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)  # per conv layer; all but the last stride 3
    period_kernel_size: int = 5
    stft_n_ffts: tuple[int, ...] = (256, 512, 1024)  # 16 ms .. 64 ms at 16 kHz; hop = n_fft // 4
    stft_channels: int = 32

    def __post_init__(self):
        for name in ("periods", "period_channels", "stft_n_ffts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def tiny(cls) -> DiscriminatorConfig:
        """A few thousand parameters, for tests."""
        return cls(periods=(2, 3), period_channels=(4, 8, 8), stft_n_ffts=(64, 128), stft_channels=4)


class DiscriminatorOutput(NamedTuple):
    logits: Tensor  # [B, N]: one score per patch, flattened
    features: list[Tensor]  # per layer, [B, C, H, W]; the last one is the logits before flattening


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Leaky-ReLU convs, then the logit conv; returns the logits map and every layer's output."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x, features


class PeriodDiscriminator(nn.Module):
    """wav [B, 1, T] folded to [B, 1, T / period, period], then 2-d convs with kernels (k, 1) over the first axis."""

    def __init__(self, period: int, channels: tuple[int, ...], kernel_size: int = 5):
        super().__init__()
        self.period = period
        ins = (1, *channels[:-1])
        strides = [3] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=(kernel_size // 2, 0)))
            for c_in, c_out, stride in zip(ins, channels, strides)
        )
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        """wav [B, 1, T] -> logits [B, N], features"""
        remainder = wav.shape[-1] % self.period
        if remainder:
            wav = F.pad(wav, (0, self.period - remainder), mode="reflect")
        x, features = _conv_stack(self.convs, self.post, rearrange(wav, "b c (t p) -> b c t p", p=self.period))
        return DiscriminatorOutput(rearrange(x, "b 1 t p -> b (t p)"), features)


class STFTDiscriminator(nn.Module):
    """2-d convs over the complex STFT at one resolution; real and imaginary parts are two input channels.

    Complex as in DAC and EnCodec (UnivNet and Vocos use the magnitude): the generator predicts phase
    directly through its ISTFT head, and a magnitude-only discriminator sees phase errors only indirectly.
    """

    def __init__(self, n_fft: int, hop_length: int, channels: int):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # UnivNet's layout on (time, frequency): frequency is strided 3 times
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4))),
            *(weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))) for _ in range(3)),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        """wav [B, 1, T] -> logits [B, N], features"""
        with autocast_off(wav):  # cuFFT has no bfloat16
            spec = torch.stft(rearrange(wav, "b 1 t -> b t").float(), self.n_fft, self.hop_length,
                              window=self.window, center=True, pad_mode="constant", normalized=True,
                              return_complex=True)
        x = rearrange(torch.view_as_real(spec), "b f t c -> b c t f")  # [B, 2, frames, n_fft // 2 + 1]
        x, features = _conv_stack(self.convs, self.post, x)
        return DiscriminatorOutput(rearrange(x, "b 1 t f -> b (t f)"), features)


class Discriminators(nn.Module):
    """All period discriminators, then all STFT discriminators, run on the same waveform."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.discriminators = nn.ModuleList([
            *(PeriodDiscriminator(p, cfg.period_channels, cfg.period_kernel_size) for p in cfg.periods),
            *(STFTDiscriminator(n, n // 4, cfg.stft_channels) for n in cfg.stft_n_ffts),
        ])

    def forward(self, wav: Tensor) -> list[DiscriminatorOutput]:
        """wav [B, 1, T] -> one (logits, features) per sub-discriminator"""
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected wav [B, 1, T], got shape {tuple(wav.shape)}")
        return [d(wav) for d in self.discriminators]
