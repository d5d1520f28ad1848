"""Bitrate (nominal and entropy-based), codebook usage and perplexity, the 95% interval, and speed figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechtok.eval import code_counts, codebook_stats, effective_bitrate, mean_ci, measure_speed, nominal_bitrate

from .conftest import speech


def test_nominal_bitrate():
    assert nominal_bitrate(50, [1024] * 8) == 4000.0  # 50 frames/s x 8 codebooks x 10 bits
    assert nominal_bitrate(75, [1024, 1024]) == 1500.0
    assert nominal_bitrate(50, [500]) == pytest.approx(50 * math.log2(500))


def test_codebooks_at_their_own_rates():
    """SNAC-style grids repeat a coarse codebook's codes: each codebook counts at its own rate."""
    assert nominal_bitrate([12.5, 25.0, 50.0], [1024] * 3) == pytest.approx(875.0)
    assert effective_bitrate([12.5, 50.0], [2.0, 4.0]) == pytest.approx(225.0)
    with pytest.raises(ValueError, match="2 codebook rates for 3 codebooks"):
        nominal_bitrate([1.0, 2.0], [4, 4, 4])


def test_codebook_stats_on_known_histograms():
    k, t = 16, 1600
    codes = torch.stack([
        torch.arange(t) % k,  # every code equally often: 4 bits, all used, perplexity 16
        torch.zeros(t, dtype=torch.long),  # one code: 0 bits
        torch.arange(t) % 2,  # two codes: 1 bit
    ])
    stats = codebook_stats(code_counts(codes, k))
    assert stats.entropy_bits == pytest.approx([4.0, 0.0, 1.0])
    assert stats.perplexity == pytest.approx([16.0, 1.0, 2.0])
    assert stats.usage == pytest.approx([1.0, 1 / 16, 2 / 16])
    assert stats.frames == t
    assert effective_bitrate(50, stats.entropy_bits) == pytest.approx(50 * 5.0)
    assert effective_bitrate(50, stats.entropy_bits[:1]) == nominal_bitrate(50, [k])  # uniform = nominal
    mixed = codebook_stats(code_counts(codes, k), sizes=[16, 4, 2])  # codebooks of their own sizes (DualCodec)
    assert mixed.usage == pytest.approx([1.0, 1 / 4, 1.0]) and mixed.entropy_bits == stats.entropy_bits


def test_code_counts_batches_and_range():
    codes = torch.randint(0, 8, (2, 3, 10), generator=torch.Generator().manual_seed(0))
    counts = code_counts(codes, 8)
    assert counts.shape == (3, 8) and (counts.sum(axis=1) == 20).all()
    np.testing.assert_array_equal(counts, code_counts(codes[0], 8) + code_counts(codes[1], 8))
    with pytest.raises(ValueError, match="range"):
        code_counts(torch.tensor([[0, 8]]), 8)


def test_mean_ci():
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.n == 4
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t(0.975, 3) x std / sqrt(n)
    assert s.ci95 == pytest.approx((2.5 - half, 2.5 + half))
    assert mean_ci([2.0]).ci95 == (2.0, 2.0)
    assert mean_ci([1.0, float("nan"), None, 3.0]).n == 2
    assert mean_ci([]) is None


def test_speed_figures(tok):
    wav = speech(1.0)
    s = measure_speed(tok, wav, 16000, n_q=4, repeats=1)
    assert s.audio_seconds == 1.0 and s.n_q == 4 and s.batch == 1
    for x in (s.encode_xrt, s.decode_xrt, s.encode_forward_xrt, s.decode_forward_xrt):
        assert math.isfinite(x) and x > 0
    only = measure_speed(tok, wav, 16000, n_q=2, repeats=1, parts=("decode",))
    assert only.encode_xrt is None and only.encode_forward_xrt is None and only.decode_xrt > 0
