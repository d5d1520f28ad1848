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

import contextlib

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


# -- FSQ: a code flips where a value it rounds sits on a rounding boundary -----------------------------------


@contextlib.contextmanager
def fsq_rounded_values():
    """While inside, every value FSQ rounds is recorded (one [B, T, 1, d] tensor per layer, in float64), as a
    value whose nearest integer is its grid point: FSQ's round as it is, the symmetry-preserving floor less 0.5."""
    from vector_quantize_pytorch import finite_scalar_quantization as fsq

    seen: list[Tensor] = []
    real = {"round_ste": fsq.round_ste, "floor_ste": fsq.floor_ste}

    def recorder(name: str, shift: float):
        def recording(z: Tensor) -> Tensor:
            seen.append(z.detach().double() - shift)
            return real[name](z)
        return recording

    fsq.round_ste, fsq.floor_ste = recorder("round_ste", 0.0), recorder("floor_ste", 0.5)
    try:
        yield seen
    finally:
        fsq.round_ste, fsq.floor_ste = real["round_ste"], real["floor_ste"]


@torch.inference_mode()
def fsq_encode_with_rounded_values(tok, z: Tensor) -> tuple[Tensor, Tensor]:
    """Latents [B, D, T] -> (codes [B, Q, T], the values each layer rounded [B, Q, T, d])."""
    with fsq_rounded_values() as seen:
        codes = tok.quantizer.encode(z)
    return codes, torch.stack([s[:, :, 0] for s in seen], dim=1)


def fsq_real_disagreements(a: Tensor, rounded_a: Tensor, b: Tensor, rounded_b: Tensor) -> tuple[int, float]:
    """(frames where FSQ codes `a` and `b` [Q, T] of one item differ for a reason other than a near-tie, the
    largest distance to the boundary of a flip, in grid steps).

    `rounded_a` / `rounded_b` [Q, T, d] are the values each path rounded. At a flip's first differing layer the
    two paths' values must round to neighbouring grid points, with the boundary between them: the measured
    difference of the two paths' values is then the margin (a code that moved for another reason, or by more than
    one grid step, is a real disagreement).
    """
    real, farthest = 0, 0.0
    for t in (a != b).any(dim=0).nonzero().flatten().tolist():
        q = int((a[:, t] != b[:, t]).nonzero()[0])
        va, vb = rounded_a[q, t], rounded_b[q, t]
        flipped = va.round() != vb.round()
        steps = (va.round() - vb.round())[flipped].abs()
        if not flipped.any() or (steps != 1).any():
            real += 1
            continue
        boundary = (va.round() + vb.round())[flipped] / 2
        farthest = max(farthest, float((va[flipped] - boundary).abs().max()))
    return real, farthest
