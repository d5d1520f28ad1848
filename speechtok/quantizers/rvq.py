"""Residual VQ on vector-quantize-pytorch: k-means init, EMA codebooks, dead-code replacement and
quantizer dropout (one model serves 1..Q codebooks) in training; a lean nearest-code search at inference.

`RVQ(cfg, inference=True)` (how a checkpoint is loaded) holds the same state under the same names in plain torch
modules (`StoredResidualVQ`), so that using a tokenizer never imports vector-quantize-pytorch, whose package
import pulls in einx and `torch._dynamo` (about a second of start-up on two cores).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor, nn

from .base import QuantizeOut, Quantizer
from .registry import register_quantizer


@dataclass(frozen=True)
class RVQConfig:
    dim: int = 128  # input latent dimension D
    num_codebooks: int = 8  # Q
    codebook_size: int = 1024
    codebook_dim: int | None = 64  # a shared linear projection D -> codebook_dim; None: search in D
    decay: float = 0.99  # EMA decay of the codebooks
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: float = 2.0  # codes used less than this (EMA count per step) are replaced
    quantizer_dropout: bool = True
    commitment_weight: float = 1.0
    # When set, replaces the absolute threshold above: a code is dead when its EMA use falls below this fraction
    # of the expected use per code per step (the step's frames / codebook_size). With 400-800 frames a step and
    # 1024 codes the expected use is 0.4-0.8, so an absolute 2 declares most of a healthy codebook dead at every
    # step. 0.1 with decay 0.99 resets a code after about 230 steps unused.
    dead_code_use_ratio: float | None = field(default=None, metadata={"hash_if_set": True})

    def __post_init__(self) -> None:
        if self.dead_code_use_ratio is not None and not 0 < self.dead_code_use_ratio < 1:
            raise ValueError(f"RVQConfig: dead_code_use_ratio must be in (0, 1), got {self.dead_code_use_ratio}")


class RVQ(Quantizer):
    derived_state_suffixes = ("._codebook.embed_avg",)  # EMA sums = codebook x usage counts

    def __init__(self, cfg: RVQConfig, inference: bool = False):
        super().__init__()
        self.cfg = cfg
        self.num_codebooks = cfg.num_codebooks
        self.codebook_size = cfg.codebook_size
        if inference:
            self.vq = StoredResidualVQ(cfg.dim, cfg.num_codebooks, cfg.codebook_size, cfg.codebook_dim)
            return
        from vector_quantize_pytorch import ResidualVQ  # training only: see the module docstring

        self.vq = ResidualVQ(
            dim=cfg.dim, num_quantizers=cfg.num_codebooks, codebook_size=cfg.codebook_size,
            codebook_dim=cfg.codebook_dim, decay=cfg.decay, kmeans_init=cfg.kmeans_init,
            kmeans_iters=cfg.kmeans_iters, threshold_ema_dead_code=cfg.threshold_ema_dead_code,
            quantize_dropout=cfg.quantizer_dropout, commitment_weight=cfg.commitment_weight,
        )
        self.register_load_state_dict_pre_hook(_derive_ema_sums)

    @property
    def codebooks(self) -> Tensor:
        """[Q, codebook_size, codebook_dim]"""
        return self.vq.codebooks

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizeOut:
        if isinstance(self.vq, StoredResidualVQ):
            raise RuntimeError("this RVQ was built for inference (a loaded checkpoint) and cannot train; build the "
                               "model with inference=False, as the training tasks do, and load the weights into it")
        x = rearrange(z, "b d t -> b t d")
        frames = x.shape[0] * x.shape[1] if mask is None else int(mask.sum())
        reset_value = self._set_dead_code_rule(frames)
        z_q, codes, commit = self.vq(x, mask=mask)
        codes = rearrange(codes, "b t q -> b q t")
        return QuantizeOut(
            z_q=rearrange(z_q, "b t d -> b d t"),
            codes=codes,
            losses={"vq/commitment": commit.sum()},
            stats=self._step_stats(codes, mask, reset_value) if self.training else {},
        )

    def _layers(self) -> list:
        return [layer._codebook for layer in self.vq.layers]

    def _set_dead_code_rule(self, frames: int) -> float | None:
        """Scale the library's absolute dead-code threshold to this step's expected use per code; a revived code
        restarts at the expected use. Returns that reset value (None under the absolute rule)."""
        ratio = self.cfg.dead_code_use_ratio
        if ratio is None or not self.training:
            return None
        expected = frames / self.codebook_size
        for book in self._layers():
            book.threshold_ema_dead_code = ratio * expected
            book.reset_cluster_size = expected
        return expected

    @torch.no_grad()
    def _step_stats(self, codes: Tensor, mask: Tensor | None, reset_value: float | None) -> dict[str, float]:
        """Codebook health of this step, averaged over the layers that ran: resets (codes whose EMA count the
        library set to the reset value in this step), usage (share of codes used) and perplexity of the batch."""
        valid = torch.ones_like(codes[:, 0], dtype=torch.bool) if mask is None else mask
        resets, usage, perplexity, ran = 0.0, 0.0, 0.0, 0
        for layer, book in enumerate(self._layers()):
            used = codes[:, layer][valid]
            used = used[used >= 0]  # -1: dropped by quantizer dropout in this step
            if used.numel() == 0:
                continue
            counts = torch.bincount(used, minlength=self.codebook_size).double()
            p = counts / counts.sum()
            reset_at = book.reset_cluster_size if reset_value is None else reset_value
            resets += float((book.cluster_size == reset_at).sum())
            usage += float((counts > 0).double().mean())
            perplexity += float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
            ran += 1
        ran = max(ran, 1)
        return {"vq/resets_per_step": resets / ran, "vq/usage": usage / ran, "vq/perplexity": perplexity / ran}

    @torch.no_grad()
    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """z [B, D, T] -> codes [B, n_q, T]: greedy nearest code per layer, as the library's eval forward.

        Each layer's winner is the nearest codeword in float64 arithmetic, whose rounding (1e-16) is far below
        that of the float32 latents (1e-7): so a code flips between two encodings of the same audio (batched or
        alone, chunked or one pass, another CPU's kernels) only where two codewords are equally near within the
        latents' own rounding. The residual is carried in float64; distances are computed in float32 and only
        the rows whose two best are too close for float32 to order are searched again in float64 (about 1-5%).
        """
        n_q = self._check_n_q(n_q)
        residual = self.vq.project_in(rearrange(z, "b d t -> (b t) d")).double()
        codes = []
        for book in self.codebooks[:n_q]:
            idx = _nearest(residual, book)
            residual = residual - book.double()[idx]
            codes.append(idx)
        return rearrange(torch.stack(codes), "q (b t) -> b q t", b=z.shape[0])

    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, q, T] -> z_q [B, D, T]: sum of the first q codebooks' entries, projected out."""
        books = self.codebooks[: codes.shape[1]]  # [q, K, d]
        if torch.compiler.is_compiling():  # traced for export: q stays a dynamic dimension (no loop over it)
            q, size = books.shape[0], books.shape[1]
            offsets = torch.arange(q, device=codes.device)[None, :, None] * size
            summed = books.reshape(q * size, -1)[codes + offsets].sum(dim=1)  # [B, T, d]
        else:
            summed = sum(book[c] for book, c in zip(books, codes.unbind(1)))  # [B, T, d]
        return rearrange(self.vq.project_out(summed), "b t d -> b d t")

    def _check_n_q(self, n_q: int | None) -> int:
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.num_codebooks:
            raise ValueError(f"n_q={n_q} is out of range: this quantizer has {self.num_codebooks} codebooks")
        return n_q


@register_quantizer("rvq", RVQConfig)
def build_rvq(cfg: RVQConfig, inference: bool = False) -> RVQ:
    return RVQ(cfg, inference=inference)


class StoredResidualVQ(nn.Module):
    """vector-quantize-pytorch's `ResidualVQ` state under its own names (`layers.{i}._codebook.embed`
    [1, K, d], `cluster_size`, `initted`, `project_in` / `project_out`), for inference only: no EMA, no k-means,
    no dropout, nothing but the codebooks and the projections that `RVQ.encode` / `decode` read."""

    def __init__(self, dim: int, num_codebooks: int, codebook_size: int, codebook_dim: int | None):
        super().__init__()
        codebook_dim = dim if codebook_dim is None else codebook_dim
        projected = codebook_dim != dim  # as ResidualVQ decides it: no projection where the dims agree
        self.project_in = nn.Linear(dim, codebook_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(codebook_dim, dim) if projected else nn.Identity()
        self.layers = nn.ModuleList(_StoredLayer(codebook_size, codebook_dim) for _ in range(num_codebooks))

    @property
    def codebooks(self) -> Tensor:
        """[Q, K, d]"""
        return torch.stack([layer._codebook.embed[0] for layer in self.layers])


class _StoredLayer(nn.Module):
    def __init__(self, codebook_size: int, codebook_dim: int):
        super().__init__()
        self._codebook = _StoredCodebook(codebook_size, codebook_dim)


class _StoredCodebook(nn.Module):
    def __init__(self, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.register_buffer("initted", torch.tensor(True))
        self.register_buffer("cluster_size", torch.zeros(1, codebook_size))
        self.register_buffer("embed", torch.zeros(1, codebook_size, codebook_dim))


def _nearest(residual: Tensor, book: Tensor) -> Tensor:
    """residual [N, d] (float64), book [K, d] -> the index [N] of each row's nearest codeword, exactly as a float64
    search finds it (the first of exactly equal distances: a deterministic tie-break)."""
    # ||r - e||^2 = ||r||^2 - 2 r.e + ||e||^2, ||r||^2 left out (constant per row), both sides centred on the
    # codebook mean, which shrinks the terms and so the expansion's cancellation error
    if book.shape[0] == 1:
        return torch.zeros(residual.shape[0], dtype=torch.long, device=residual.device)
    mean = book.mean(dim=0)
    if torch.compiler.is_compiling():  # traced for export (ONNX): no data-dependent branch, every row in float64
        exact = book.double() - mean.double()  # the search below does on its unsure rows: the same codes
        return torch.addmm((exact * exact).sum(-1), residual - mean.double(), exact.t(), alpha=-2.0).argmin(dim=-1)
    centred = book - mean
    norms = (centred * centred).sum(-1)
    r = (residual - mean).float()
    dist = torch.addmm(norms, r, centred.t(), alpha=-2.0)
    best, idx = dist.topk(2, dim=-1, largest=False)
    # float32 rounding of these distances stays below d * 6e-8 * (|r|^2 + |e|^2); rows closer than 16x that
    # (at least 1e-4) are searched again
    rtol = max(1e-4, 16 * book.shape[-1] * torch.finfo(torch.float32).eps)
    unsure = (best[:, 1] - best[:, 0]) <= rtol * ((r * r).sum(-1) + norms.max())
    idx = idx[:, 0]
    if unsure.any():
        exact = book.double() - mean.double()  # centred in float64: a float32 centring would round the codewords
        rows = residual[unsure] - mean.double()
        idx[unsure] = torch.addmm((exact * exact).sum(-1), rows, exact.t(), alpha=-2.0).argmin(dim=-1)
    return idx


def _derive_ema_sums(module, state_dict, prefix, *args) -> None:
    """Fill EMA sums left out of a checkpoint so that training can go on from it: embed_avg = embed * count."""
    for key in [k for k in state_dict if k.startswith(prefix) and k.endswith("._codebook.embed")]:
        base = key[: -len("embed")]
        if base + "embed_avg" not in state_dict and base + "cluster_size" in state_dict:
            state_dict[base + "embed_avg"] = state_dict[key] * state_dict[base + "cluster_size"][..., None]
