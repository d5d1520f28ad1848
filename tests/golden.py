"""What the golden-output test (tests/test_golden.py) and its builder (tests/assets/build_golden.py) share: the
latents a tokenizer's nearest-code decisions are made on, and the decisions that are near-ties."""

from __future__ import annotations

import torch
from torch import Tensor

from speechtok.models import hubert_features

# Another CPU's kernels move latents by up to ~3e-6 of their norm (tests/ties.py); a flip is a near-tie when the
# nearest code's lead is within twice a bound 3x that, on the latent of this CPU.
TIE_RTOL = 2e-5


@torch.inference_mode()
def decision_inputs(tok, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
    """wav [T] -> the vectors [T_frames, d] the first nearest-code search reads, and the codebooks [K, d] of
    each search in order (each later one reads the residual of the earlier)."""
    if tok.family == "hubert-units":
        feats, _ = hubert_features(tok, wav, 16000)
        return feats[0].T, [tok.quantizer.centroids]
    x = wav[None, None]
    frames = -(-wav.numel() // tok.hop_length)
    z = tok.encode_latents(wav, 16000) if tok.family == "codec" else tok.encoder(x, None)[..., :frames]
    return tok.quantizer.vq.project_in(z[0].T), list(tok.quantizer.codebooks)


def gaps(vectors: Tensor, books: list[Tensor], codes: Tensor) -> Tensor:
    """Per search and frame, (distance to the code not chosen that is nearest) - (distance to `codes`' choice),
    relative to the vector's norm: [Q, T], negative where `codes` is not the nearest on these vectors."""
    r, out = vectors.double(), []
    norms = r.norm(dim=1)
    for q, book in enumerate(books):
        d = torch.cdist(r, book.double())
        chosen = d.gather(1, codes[q][:, None]).squeeze(1)
        others = d.scatter(1, codes[q][:, None], float("inf")).min(1).values
        out.append((others - chosen) / norms)
        r = r - book.double()[codes[q]]
    return torch.stack(out)
