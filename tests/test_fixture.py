"""The tests' codec (tests/assets/tiny-codec) is a real RVQ: every layer quantizes a residual well above float
rounding with well-separated codewords, so its invariance tests measure the code, not the CPU's rounding."""

from __future__ import annotations

import torch

import speechtok

from .conftest import TINY_CODEC, speech
from .ties import tie_shares


def test_codewords_are_well_separated_at_every_layer():
    books = speechtok.load(TINY_CODEC).quantizer.codebooks.double()  # [Q, K, d]
    for q, book in enumerate(books):
        rms = book.norm(dim=1).pow(2).mean().sqrt()
        assert torch.pdist(book).min() >= 0.1 * rms, f"layer {q}: near-duplicate codewords"  # built: 0.15-0.44


@torch.inference_mode()
def test_every_layer_leaves_a_residual_well_above_rounding():
    """Each layer removes part of the residual and leaves a stated fraction of the latent (built: 66% after
    layer 1 down to 6.7% after layer 8, on real speech and on the synthetic voice alike)."""
    tok = speechtok.load(TINY_CODEC)
    residual = tok.encode_latents(speech(12.0), 16000)[0].double().t()  # [T, d]: no projection in this codec
    rms = residual.norm(dim=1).pow(2).mean().sqrt()
    previous = 1.0
    for q, book in enumerate(tok.quantizer.codebooks.double()):
        residual = residual - book[torch.cdist(residual, book).argmin(1)]
        share = float(residual.norm(dim=1).pow(2).mean().sqrt() / rms)
        assert 0.02 <= share < 0.9 * previous, f"layer {q}: residual {share:.4f} of the latent after {previous:.4f}"
        previous = share


def test_near_ties_are_under_one_percent_of_each_layers_decisions():
    """The decisions that float rounding could flip (two codewords within 1e-5 of the latent's norm): built,
    0% in layers 1-7 and 0.67% in layer 8 on real speech; the codec the fixture replaced had 30-86% in layers 4-8."""
    tok = speechtok.load(TINY_CODEC)
    with torch.inference_mode():
        z = tok.encode_latents(speech(12.0), 16000)[0]
    shares = tie_shares(tok, z)
    assert max(shares) <= 0.01, [f"{100 * s:.2f}%" for s in shares]


def test_the_fixture_is_the_checked_in_file(tiny_ckpt):
    """Tests load a copy of the file in the repository, not a codec rebuilt on this machine."""
    assert (tiny_ckpt / "model.safetensors").read_bytes() == (TINY_CODEC / "model.safetensors").read_bytes()
