"""Finite scalar quantization (Mentzer et al., 2023) on vector-quantize-pytorch's `ResidualFSQ`: each codebook
projects the residual to len(levels) dimensions and rounds each to a fixed grid, so there is no codebook to
learn, no commitment loss, no dead code to replace. Residual layers (grids shrinking by 1 / (level - 1) per
layer) give Q codebooks of prod(levels) codes each, nested as RVQ's: the first q codes are a q-codebook encoding.

Levels (8, 8, 4, 4) give 1024 codes = 10 bits per codebook, as one RVQ codebook of 1024: the same bits per frame
at the same Q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from .base import QuantizeOut, Quantizer
from .registry import register_quantizer


@dataclass(frozen=True)
class FSQConfig:
    kind: str = "fsq"  # tells a codec's `quantizer:` section from RVQ's
    dim: int = 128  # input latent dimension D
    levels: tuple[int, ...] = (8, 8, 4, 4)  # grid points per projected dimension; codebook_size = prod(levels)
    num_codebooks: int = 8  # Q residual layers
    quantizer_dropout: bool = True  # train on a random depth 1..Q, so that any n_q decodes

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(int(x) for x in self.levels))
        if self.kind != "fsq":
            raise ValueError(f"FSQConfig.kind must be 'fsq', got {self.kind!r}")
        if not self.levels or min(self.levels) < 3 or self.num_codebooks < 1:
            raise ValueError(f"FSQ needs levels >= 3 (got {list(self.levels)}) and num_codebooks >= 1 "
                             f"(got {self.num_codebooks})")


class FSQ(Quantizer):
    def __init__(self, cfg: FSQConfig):
        super().__init__()
        self.cfg = cfg
        self.num_codebooks = cfg.num_codebooks
        self.codebook_size = math.prod(cfg.levels)
        from vector_quantize_pytorch import ResidualFSQ  # here, not on import: the package pulls in torch._dynamo

        self.fsq = ResidualFSQ(dim=cfg.dim, levels=list(cfg.levels), num_quantizers=cfg.num_codebooks,
                               quantize_dropout=cfg.quantizer_dropout)

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizeOut:
        """z [B, D, T] -> QuantizeOut; `mask` is unused: no codebook statistics for padding to skew."""
        z_q, codes = self.fsq(rearrange(z, "b d t -> b t d"))
        return QuantizeOut(z_q=rearrange(z_q, "b t d -> b d t"), codes=rearrange(codes.long(), "b t q -> b q t"))

    @torch.no_grad()
    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """z [B, D, T] -> codes [B, n_q, T]. Layer i's codes do not depend on later layers, so the first n_q of a
        full encoding are the n_q-codebook encoding."""
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.num_codebooks:
            raise ValueError(f"n_q={n_q} is out of range: this quantizer has {self.num_codebooks} codebooks")
        was_training = self.training
        self.eval()  # no quantizer dropout
        try:
            _, codes = self.fsq(rearrange(z, "b d t -> b t d"))
        finally:
            self.train(was_training)
        return rearrange(codes[..., :n_q].long(), "b t q -> b q t")

    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, q, T] -> z_q [B, D, T]: the sum of the first q layers' grid points, each at its layer's scale."""
        books = self.fsq.codebooks[: codes.shape[1]]  # [q, codebook_size, len(levels)]
        scales = self.fsq.scales[: codes.shape[1]]  # [q, len(levels)]
        summed = sum(book[c] * s for book, c, s in zip(books, codes.unbind(1), scales))  # [B, T, len(levels)]
        return rearrange(self.fsq.project_out(summed), "b t d -> b d t")


@register_quantizer("fsq", FSQConfig)
def build_fsq(cfg: FSQConfig, inference: bool = False) -> FSQ:
    return FSQ(cfg)  # no lighter inference form
