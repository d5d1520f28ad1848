"""The GAN decoder's generator: a Vocos-style ConvNeXt backbone at the frame rate and an inverse-STFT head.

All the heavy work runs at the frame rate (50 frames/s) instead of upsampling to the sample rate as
HiFi-GAN does, which makes decoding several times faster on CPU. Its discriminators and losses are in
`discriminators.py` and `losses.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor, nn

from ..layers import autocast_off
from ..layers.convnext import ConvNeXtBlock
from .base import Decoder
from .istft import ISTFT


@dataclass(frozen=True)
class VocosConfig:
    input_dim: int = 128  # D of the quantized latents
    dim: int = 256  # backbone width
    intermediate_dim: int = 768
    num_layers: int = 8
    kernel_size: int = 7
    n_fft: int = 1280  # 4 x hop
    hop_length: int = 320
    # the input conv's kernel (None: kernel_size); 1 for a wide input that is constant over a frame's span (unit
    # centroids), where a k-wide conv of D x dim would be most of a small vocoder's weights
    embed_kernel_size: int | None = field(default=None, metadata={"hash_if_set": True})

    def __post_init__(self) -> None:
        for name in ("kernel_size", "embed_kernel_size"):
            k = getattr(self, name)
            if k is not None and (k < 1 or k % 2 == 0):
                raise ValueError(f"VocosConfig.{name} must be odd and positive (a centred conv), got {k}")


class VocosDecoder(Decoder):
    def __init__(self, cfg: VocosConfig):
        super().__init__()
        self.cfg = cfg
        self.hop_length = cfg.hop_length
        embed_kernel = cfg.kernel_size if cfg.embed_kernel_size is None else cfg.embed_kernel_size
        self.embed = nn.Conv1d(cfg.input_dim, cfg.dim, embed_kernel, padding=embed_kernel // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        scale = 1.0 / cfg.num_layers
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, cfg.kernel_size, scale) for _ in range(cfg.num_layers)
        )
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.n_fft + 2)  # magnitude and phase of n_fft // 2 + 1 bins
        self.istft = ISTFT(cfg.n_fft, cfg.hop_length)

    def forward(self, z_q: Tensor) -> Tensor:
        """z_q [B, D, T] -> wav [B, 1, T * hop_length]"""
        x = self.norm(rearrange(self.embed(z_q), "b c t -> b t c"))
        x = rearrange(x, "b t c -> b c t")
        for block in self.blocks:
            x = block(x)
        with autocast_off(x):  # the spectrum in float32 under mixed precision: exp, phase and the inverse FFT
            x = self.head(self.final_norm(rearrange(x, "b c t -> b t c").float()))
            log_mag, phase = rearrange(x, "b t (two f) -> two b f t", two=2)
            mag = torch.exp(log_mag).clamp(max=1e2)  # bounded: an untrained head must not overflow
            spec = torch.polar(mag, phase)
            return self.istft(spec).unsqueeze(1)

    @property
    def receptive_field_frames(self) -> int:
        return (self.embed.kernel_size[0] // 2 + self.cfg.num_layers * (self.cfg.kernel_size // 2)
                + self.cfg.n_fft // self.hop_length)
