"""Batch and chunk invariance (DESIGN.md, "Invariance") on the tests' codec and on the bundled one: no real
disagreement at any layer, with the near-tie margin measured from the two paths' latents (tests/ties.py).

The same tests rerun under other CPU kernels (SSE4.1, AVX2) in subprocesses: rounding differs with the kernels,
and the property must hold on every x86 CPU, not on the one a bound was tuned on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import speechtok

from .conftest import speech
from .ties import assert_latents_agree, real_disagreements

BUNDLED = "speechtok-codec-16k"


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["tiny", BUNDLED])
def codec(request, tiny_ckpt):
    return speechtok.load(tiny_ckpt if request.param == "tiny" else request.param)


def padded_batch(wav: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """[B, 1, max(lengths)]: item i is `wav` from i * 1000 on, then garbage that must not matter."""
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(len(lengths), 1, max(lengths), generator=gen)
    for i, n in enumerate(lengths):
        batch[i, 0, :n] = wav[i * 1000 : i * 1000 + n]
    return batch


def test_an_item_of_a_padded_batch_gets_its_codes_alone(codec, threads):
    lengths = [48000, 30001, 16320, 7000]
    batch = padded_batch(speech(3.5), lengths)
    together = codec.encode(batch, 16000, lengths=torch.tensor(lengths))
    z_together = codec.encode_latents(batch, 16000, lengths=torch.tensor(lengths))
    for i, n in enumerate(lengths):
        alone = codec.encode(batch[i, :, :n], 16000)
        frames = int(alone.lengths[0])
        assert int(together.lengths[i]) == frames
        z_alone = codec.encode_latents(batch[i, :, :n], 16000)[0]
        z_item = z_together[i, :, :frames]
        assert_latents_agree(z_alone, z_item)
        assert real_disagreements(codec, z_alone, alone.codes[0], together.codes[i, :, :frames], z_item) == 0


def test_a_long_input_in_chunks_gets_the_codes_and_audio_of_one_pass(codec, threads, monkeypatch):
    wav = speech(6.0)
    full = codec.encode(wav, 16000)
    z_full = codec.encode_latents(wav, 16000)[0]
    decoded = codec.decode(full)
    monkeypatch.setattr(codec, "chunk_seconds", 0.7)  # 35-frame chunks: several boundaries inside 6 s
    chunked = codec.encode(wav, 16000)
    z_chunked = codec.encode_latents(wav, 16000)[0]
    assert chunked.codes.shape == full.codes.shape
    assert_latents_agree(z_full, z_chunked)
    assert real_disagreements(codec, z_full, full.codes[0], chunked.codes[0], z_chunked) == 0
    torch.testing.assert_close(codec.decode(full), decoded, atol=1e-4, rtol=1e-4)  # chunked decode, same codes


def test_the_check_finds_a_fault_that_moves_latents_or_codes(tiny_ckpt, monkeypatch):
    """The checks above can fail: chunks without their context move latents; a code off by one is no tie."""
    codec = speechtok.load(tiny_ckpt)
    wav = speech(6.0)
    full = codec.encode(wav, 16000)
    z_full = codec.encode_latents(wav, 16000)[0]
    monkeypatch.setattr(codec.encoder.__class__, "receptive_field", property(lambda self: 0))
    monkeypatch.setattr(codec, "chunk_seconds", 0.7)
    z_broken = codec.encode_latents(wav, 16000)[0]
    with pytest.raises(AssertionError, match="latents of the two paths differ"):
        assert_latents_agree(z_full, z_broken)
    wrong = full.codes[0].clone()
    wrong[3, 10:20] = (wrong[3, 10:20] + 1) % codec.codebook_size
    assert real_disagreements(codec, z_full, full.codes[0], wrong, z_full) == 10


ISA_LIMITS = {  # env for torch's own kernels and for oneDNN's (convolutions)
    "sse41": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


@pytest.mark.parametrize("isa", sorted(ISA_LIMITS))
def test_invariance_holds_under_other_cpu_kernels(isa):
    if os.environ.get("SPEECHTOK_ISA_CHILD"):
        pytest.skip("already a rerun under limited kernels")
    env = {**os.environ, **ISA_LIMITS[isa], "SPEECHTOK_ISA_CHILD": "1"}
    here = Path(__file__)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(here), "-q", "-p", "no:cacheprovider", "-k", "not other_cpu_kernels"],
        cwd=here.parents[1], env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
