"""Telling floating-point near-ties apart from real disagreements between two encodings of the same audio."""

from __future__ import annotations

import torch


def real_disagreements(tok, latents: torch.Tensor, a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> int:
    """Frames where codes `a` and `b` [Q, T] differ for a reason other than a near-tie.

    At the first layer where a frame differs, both candidates are scored against the residual left by the
    shared earlier layers (computed from `latents` [D, T]); if their squared distances are equal within `rtol`,
    either choice is a correct nearest code and the frame is a near-tie (DESIGN.md, "Invariance").
    """
    books = tok.quantizer.codebooks
    real = 0
    for t in (a != b).any(dim=0).nonzero().flatten().tolist():
        q = int((a[:, t] != b[:, t]).nonzero()[0])
        residual = tok.quantizer.vq.project_in(latents[:, t])
        for layer in range(q):
            residual = residual - books[layer][a[layer, t]]
        da = (residual - books[q][a[q, t]]).square().sum()
        db = (residual - books[q][b[q, t]]).square().sum()
        if (da - db).abs() > rtol * max(da, db) + 1e-12:
            real += 1
    return real
