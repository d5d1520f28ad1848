"""The ConvNeXt block of Vocos-style backbones (the GAN decoder's and the flow decoder's)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over time, then a pointwise MLP on each frame, scaled by `gamma` and added back."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, T] -> [B, C, T]"""
        h = rearrange(self.dwconv(x), "b c t -> b t c")
        h = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        return x + rearrange(h, "b t c -> b c t")
