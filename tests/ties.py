"""Telling floating-point near-ties apart from real disagreements between two encodings of the same audio."""

from __future__ import annotations

import torch


@torch.inference_mode()
def real_disagreements(tok, latents: torch.Tensor, a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> int:
    """Frames where codes `a` and `b` [Q, T] differ for a reason other than a near-tie.

    At the first layer where a frame differs, both candidates are scored against the residual left by the
    shared earlier layers (computed from `latents` [D, T]). Two encodings of the same audio differ in the
    latents by float rounding, about 1e-7 of the latent's norm; if the two candidates' distances differ by less
    than `rtol` of that norm, either is a correct nearest code and the frame is a near-tie (DESIGN.md,
    "Invariance"). A real fault (padding read as signal, a misaligned chunk) moves latents far more than that.
    """
    books = tok.quantizer.codebooks
    real = 0
    for t in (a != b).any(dim=0).nonzero().flatten().tolist():
        q = int((a[:, t] != b[:, t]).nonzero()[0])
        latent = tok.quantizer.vq.project_in(latents[:, t])
        residual = latent
        for layer in range(q):
            residual = residual - books[layer][a[layer, t]]
        gap = (residual - books[q][a[q, t]]).norm() - (residual - books[q][b[q, t]]).norm()
        if gap.abs() > rtol * latent.norm():
            real += 1
    return real
