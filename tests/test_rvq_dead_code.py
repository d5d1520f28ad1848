"""The RVQ's dead-code rule in training: a healthy codebook is left alone, a dead code is revived."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtok.config import config_hash
from speechtok.quantizers.rvq import RVQ, RVQConfig

K, DIM, FRAMES = 64, 4, 32  # 32 frames a step: each code's expected use is 0.5 per step, below the old threshold 2


def clustered_stream(steps: int, seed: int = 0) -> list[torch.Tensor]:
    """Batches [1, DIM, FRAMES] drawn evenly from K tight clusters: every code is used, none often."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(K, DIM, generator=torch.Generator().manual_seed(123))
    batches = []
    for _ in range(steps):
        pick = torch.randint(K, (FRAMES,), generator=gen)
        batches.append((centres[pick] + 0.05 * torch.randn(FRAMES, DIM, generator=gen)).T[None])
    return batches


def trained_rvq(**overrides) -> RVQ:
    """One codebook k-means-initialised on plenty of the stream's vectors (all clusters found)."""
    torch.manual_seed(0)
    cfg = RVQConfig(dim=DIM, codebook_dim=DIM, num_codebooks=1, codebook_size=K, quantizer_dropout=False,
                    kmeans_iters=20, **overrides)
    rvq = RVQ(cfg).train()
    rvq(torch.cat(clustered_stream(64, seed=99), dim=-1))  # k-means on 2,048 vectors
    return rvq


def resets_on_stream(rvq: RVQ, steps: int = 500) -> list[float]:
    """Resets per step; by step 300 the EMA counts have decayed from k-means' 32 a code to their steady 0.5."""
    return [rvq(batch).stats["vq/resets_per_step"] for batch in clustered_stream(steps)]


def test_a_healthy_codebook_is_not_reset_under_the_relative_rule():
    resets = resets_on_stream(trained_rvq(dead_code_use_ratio=0.1))[300:]
    assert sum(resets) / len(resets) < 0.01 * K


def test_the_absolute_threshold_resets_a_healthy_codebook_at_every_step():
    # what the rule replaces: with 0.5 expected uses per code per step, an EMA count of 2 is never reached
    resets = resets_on_stream(trained_rvq(threshold_ema_dead_code=2.0))[300:]
    assert sum(resets) / len(resets) > 0.3 * K


def test_an_unused_code_is_revived():
    rvq = trained_rvq(dead_code_use_ratio=0.1, decay=0.9)  # decay 0.9: dead after ~22 steps unused, not ~230
    book = rvq.vq.layers[0]._codebook
    with torch.no_grad():
        book.embed[0, 5] = 1e3  # far from all data: never the nearest code again
        book.embed_avg[0, 5] = book.embed[0, 5] * book.cluster_size[0, 5]
    resets_on_stream(rvq, steps=100)
    assert book.embed[0, 5].abs().max() < 50, "the dead code was never replaced by a data vector"
    assert 0 < book.cluster_size[0, 5]


def test_stats_report_usage_and_perplexity():
    rvq = trained_rvq(dead_code_use_ratio=0.1)
    out = rvq(torch.cat(clustered_stream(16), dim=-1))
    counts = np.bincount(out.codes.flatten().numpy(), minlength=K)
    p = counts[counts > 0] / counts.sum()
    assert out.stats["vq/usage"] == pytest.approx((counts > 0).mean())
    assert out.stats["vq/perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert out.stats["vq/perplexity"] > 0.6 * K  # 512 frames over 64 evenly drawn clusters
    assert rvq.eval()(clustered_stream(1)[0]).stats == {}


def test_the_new_field_keeps_older_checkpoints_identity_and_is_checked():
    # a field added after checkpoints were made hashes only when set: bundled checkpoints keep their config_hash
    base = RVQConfig()
    assert config_hash(base) != config_hash(RVQConfig(dead_code_use_ratio=0.1))
    assert config_hash(base) == config_hash(RVQConfig(dead_code_use_ratio=None))
    with pytest.raises(ValueError, match="dead_code_use_ratio"):
        RVQConfig(dead_code_use_ratio=2.0)
