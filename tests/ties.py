"""Telling floating-point near-ties apart from real disagreements between two encodings of the same audio
(DESIGN.md, "Invariance").

Two paths (an item alone or in a padded batch, one pass or chunks, 1 or 2 threads, AVX-512 or SSE kernels)
give latents that differ by float rounding, delta_t per frame. If path A picks code a for its residual r_A and
path B picks b for r_B, each the nearest for its own residual, then at r_A

    0 <= |r_A - e_b| - |r_A - e_a| <= 2 * delta_t        (triangle inequality, twice)

so a flip is a near-tie exactly when that gap is within the latents' measured rounding. A flip outside it is a
real disagreement: a code that is not the nearest for its latent. A fault that moves the latents themselves
(padding read as signal, a misaligned chunk) fails `assert_latents_agree` instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Latents of two paths differ by float32 rounding: at most 3.2e-6 of their RMS frame norm in any frame, measured
# (benchmarks/invariance.py) under SSE4.1, AVX2 and AVX-512 kernels with 1 and 2 threads. A fault moves them by
# far more (chunks without their context: 1.9). The check allows 30x the measured rounding; a path whose latents
# a test cannot see (a pretokenize batch) is taken at 1e-5, 3x the largest measured.
LATENT_RTOL = 1e-4
UNSEEN_ROUNDING = 1e-5
# The float32 projection into the codebook space rounds once more on each side.
PROJECTION_RTOL = 1e-6


@torch.inference_mode()
def latent_difference(za: Tensor, zb: Tensor) -> float:
    """Largest per-frame distance between latents [D, T] of two paths, relative to their RMS frame norm."""
    return float((za.double() - zb.double()).norm(dim=0).max() / _rms_norm(za))


def assert_latents_agree(za: Tensor, zb: Tensor) -> None:
    diff = latent_difference(za, zb)
    assert diff <= LATENT_RTOL, f"latents of the two paths differ by {diff:.2e} of their RMS (> {LATENT_RTOL:g})"


@torch.inference_mode()
def real_disagreements(tok, za: Tensor, a: Tensor, b: Tensor, zb: Tensor | None = None) -> int:
    """Frames where codes `a` and `b` [Q, T] of one item differ for a reason other than a near-tie.

    `za` [D, T] are the latents that gave `a`, `zb` those that gave `b`. Without `zb` (a path whose latents the
    test cannot see), the rounding is taken as its bound, UNSEEN_ROUNDING of the RMS frame norm.
    """
    pa = _project(tok, za)
    scale = _rms_norm(pa)
    if zb is None:
        delta = torch.full((pa.shape[1],), UNSEEN_ROUNDING * scale, dtype=torch.float64)
    else:
        delta = (pa - _project(tok, zb)).norm(dim=0)
    books = tok.quantizer.codebooks.double()
    real = 0
    for t in (a != b).any(dim=0).nonzero().flatten().tolist():
        q = int((a[:, t] != b[:, t]).nonzero()[0])
        residual = pa[:, t] - books[torch.arange(q), a[:q, t]].sum(0)  # the layers both paths share
        gap = (residual - books[q, b[q, t]]).norm() - (residual - books[q, a[q, t]]).norm()
        if not -PROJECTION_RTOL * scale <= gap <= 2 * delta[t] + PROJECTION_RTOL * scale:
            real += 1
    return real


@torch.inference_mode()
def tie_shares(tok, z: Tensor, rtol: float = 1e-5) -> list[float]:
    """Per RVQ layer, the share of frames of latents `z` [D, T] whose two nearest codewords are within `rtol` of
    the latent's norm: the decisions that rounding could flip."""
    residual = _project(tok, z).t()  # [T, d]
    norms = residual.norm(dim=1)
    shares = []
    for book in tok.quantizer.codebooks.double():
        dist = torch.cdist(residual, book)
        two = dist.topk(2, largest=False).values
        shares.append(float(((two[:, 1] - two[:, 0]) < rtol * norms).double().mean()))
        residual = residual - book[dist.argmin(1)]
    return shares


def _project(tok, z: Tensor) -> Tensor:
    """Latents [D, T] -> the quantizer's input [d, T] in float64, projected in float32 as the quantizer does."""
    return tok.quantizer.vq.project_in(z.t().float()).t().double()


def _rms_norm(z: Tensor) -> float:
    return float(z.double().norm(dim=0).pow(2).mean().sqrt())
