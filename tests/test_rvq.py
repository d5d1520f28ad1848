"""The RVQ's inference search: the nearest codeword in float64 at every layer, fast or not."""

from __future__ import annotations

import pytest
import torch

from speechtok.quantizers.rvq import RVQ, RVQConfig, _nearest


def float64_nearest(residual: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    return torch.cdist(residual, book.double()).argmin(dim=-1)


@pytest.mark.parametrize("dim", [4, 64])
def test_nearest_is_the_float64_nearest_even_for_near_ties(dim):
    gen = torch.Generator().manual_seed(0)
    book = torch.randn(256, dim, generator=gen)
    residual = torch.randn(2000, dim, generator=gen, dtype=torch.float64)
    # rows almost midway between two codewords: float32 distances cannot order them, float64 can
    a, b = book[:500:2].double(), book[1:500:2].double()
    tilt = 1e-9 * torch.randn(a.shape[0], 1, generator=gen, dtype=torch.float64)
    midway = (0.5 + tilt) * a + (0.5 - tilt) * b
    residual = torch.cat([residual, midway, 1e3 * residual[:100]])  # and rows far from every codeword
    assert torch.equal(_nearest(residual, book), float64_nearest(residual, book))


def test_rvq_encode_is_greedy_float64_search_and_a_prefix_for_fewer_codebooks():
    torch.manual_seed(0)
    rvq = RVQ(RVQConfig(dim=16, codebook_dim=8, num_codebooks=4, codebook_size=32, kmeans_init=False)).eval()
    z = torch.randn(2, 16, 50)
    codes = rvq.encode(z)
    residual = rvq.vq.project_in(z.transpose(1, 2)).reshape(-1, 8).double()
    for q, book in enumerate(rvq.codebooks):
        expected = float64_nearest(residual, book)
        assert torch.equal(codes[:, q].reshape(-1), expected), f"layer {q}"
        residual = residual - book.double()[expected]
    assert torch.equal(rvq.encode(z, n_q=2), codes[:, :2])


def test_a_one_code_book_gives_code_zero():
    assert _nearest(torch.randn(5, 3, dtype=torch.float64), torch.randn(1, 3)).tolist() == [0] * 5
