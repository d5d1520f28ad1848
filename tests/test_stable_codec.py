"""Stable Codec behind the speechtok API, against stable-codec 0.1.2's `StableCodec.encode` / `decode` on
stable-audio-tools 0.0.19's TAAE: the packages' model built small in a process of its own
(tests/peers/stable_codec_official.py), saved in the publisher's layout (model_config.json + model.ckpt), loaded by
path. The adapter itself needs neither package."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

import speechtok
from speechtok.adapters.stable_codec import windowed_attention
from speechtok.errors import CheckpointError

from .test_adapters import _check_batch
from .test_xcodec2 import run_official

PINNED_STABLE_CODEC = Path(sys.prefix) / "pinned" / "stable-codec-0.1.2"  # .ci/run installs both packages there
BOTTLENECKS = {"none": [17**6], "2x15625_700bps": [15625] * 2, "4x729_1000bps": [729] * 4}


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return run_official("stable_codec_official.py", tmp_path_factory.mktemp("stable_codec"), PINNED_STABLE_CODEC)


def test_stable_codec_matches_the_package(official):
    """The package attends to every frame on a CPU (it windows only through FlashAttention): `window=full`; its
    `encode` of a tensor does not normalise the level: `loudness=off`. Latents agree to float rounding, codes
    but for near-ties (another CPU's kernels round differently), and our decoder gives their audio from their
    codes."""
    from safetensors.torch import load_file

    expected = load_file(official / "expected.safetensors")
    for name, sizes in BOTTLENECKS.items():
        tok = speechtok.load(f"stable-codec:{official / 'stable-codec'}?window=full&loudness=off&posthoc={name}")
        assert (tok.sample_rate, tok.frame_rate, tok.codebook_sizes) == (16000, 200, sizes)
        assert tok.bitrate == pytest.approx(200 * sum(torch.tensor(sizes).double().log2().tolist()))
        for n in (16000, 8560):
            wav, theirs = expected[f"wav_{n}"], expected[f"codes_{name}_{n}"].long()
            codes = tok.encode(wav, 16000)
            assert len(set(codes.codes[0, 0].tolist())) > 10  # codes vary
            with torch.inference_mode():
                latents = tok.peer.encode(wav)
            rounding = float((latents - expected[f"latents_{n}"]).abs().max())
            assert rounding < LATENT_ROUNDING, f"latents differ by {rounding:.1e}"
            assert (codes.codes != theirs).double().mean() < 0.02
            assert_flips_are_near_ties(tok.peer, latents[0], codes.codes[0], theirs[0], rounding)
            audio = expected[f"audio_{name}_{n}"]
            assert audio.std() > 0.1
            ours = tok.decode(dataclasses.replace(codes, codes=theirs))
            torch.testing.assert_close(ours, audio, atol=2e-5, rtol=0)
    _check_batch(tok, 16000, 7000)


# The two encoders' latents differ by float32 rounding (measured: 2e-6 at most over both inputs on this VM's
# AVX-512 kernels); a fault moves them by orders of magnitude more.
LATENT_ROUNDING = 1e-4


def assert_flips_are_near_ties(model, z: Tensor, ours: Tensor, theirs: Tensor, rounding: float) -> None:
    """Codes [Q, T] from latents z [D, T] that differ from the package's only where a value FSQ rounds lies within
    the latents' rounding of the boundary between the two grid points (tanh and the stages' clip do not stretch
    distances, and residuals agree exactly up to the first differing stage)."""
    residual = torch.tanh(z.double()).t()  # [T, D]
    for q, fsq in enumerate(model.quantizers[:ours.shape[0]]):
        clipped = residual
        if model.posthoc:
            clipped = ((1 - 1e-3) * torch.clamp(residual / fsq.scale, -1, 1) + 1e-3 * residual / fsq.scale) * fsq.scale
        position = (clipped + fsq.scale) / fsq.step.double()
        for t in (ours[q] != theirs[q]).nonzero().flatten().tolist():
            if (ours[:q, t] != theirs[:q, t]).any():
                continue  # decided at an earlier stage
            a, b = (torch.tensor([ours[q, t], theirs[q, t]])[:, None] // fsq.basis) % fsq.levels
            moved = a != b
            assert ((a - b)[moved].abs() == 1).all(), f"stage {q} frame {t}: a digit moved by more than one step"
            boundary = (a + b)[moved].double() / 2
            margin = float((position[t][moved] - boundary).abs().max())
            assert margin <= 2 * rounding / float(fsq.step.min()) + 1e-9, \
                f"stage {q} frame {t}: {margin:.1e} steps from the boundary, not a near-tie"
        residual = residual - fsq.quantize(residual, clip=model.posthoc)[0]


def test_the_near_tie_check_fails_a_code_that_is_not_the_nearest(official):
    from safetensors.torch import load_file

    expected = load_file(official / "expected.safetensors")
    tok = speechtok.load(f"stable-codec:{official / 'stable-codec'}?window=full&loudness=off&posthoc=4x729_1000bps")
    with torch.inference_mode():
        latents = tok.peer.encode(expected["wav_16000"])[0]
    codes = tok.encode(expected["wav_16000"], 16000).codes[0]
    assert_flips_are_near_ties(tok.peer, latents, codes, codes, 1e-6)
    digit = int(codes[1, 20] % 3)  # the first of its six base-3 digits
    for moved_to in {0, 1, 2} - {digit}:  # each other level of that digit: one step, or two
        moved = codes.clone()
        moved[1, 20] += moved_to - digit
        with pytest.raises(AssertionError, match="stage 1 frame 20"):
            assert_flips_are_near_ties(tok.peer, latents, codes, moved, 1e-6)


def test_items_are_brought_to_minus_20_lufs_first(official):
    """As the publisher's encode of a file: the level does not change the codes, within the clipping limit."""
    from speechtok import audio

    source = official / "stable-codec"
    wav = 0.05 * torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(6))
    tok = speechtok.load(f"stable-codec:{source}")
    codes, louder = tok.encode(wav, 16000).codes, tok.encode(4 * wav, 16000).codes
    assert torch.equal(codes, louder)
    gain = 10 ** ((-20 - audio.loudness(wav[0], 16000)) / 20)
    as_given = speechtok.load(f"stable-codec:{source}?loudness=off")
    assert torch.equal(as_given.encode(gain * wav, 16000).codes, codes)
    assert not torch.equal(as_given.encode(wav, 16000).codes, codes)
    quiet = speechtok.load(f"stable-codec:{source}?loudness=-30")
    assert torch.equal(quiet.encode(wav, 16000).codes, as_given.encode(gain / 10 ** 0.5 * wav, 16000).codes)
    silence = torch.zeros(1, 1, 16000)  # left alone, not amplified
    assert torch.equal(tok.encode(silence, 16000).codes, as_given.encode(silence, 16000).codes)


def test_loudness_is_bs1770s():
    from speechtok.audio import loudness

    sine = torch.sin(2 * torch.pi * 1000 * torch.arange(48000 * 2) / 48000)[None]
    assert loudness(0.5 * sine, 48000) == pytest.approx(-3.01 - 6.02, abs=0.05)  # full-scale 1 kHz: -3.01 LKFS
    noise = 0.1 * torch.randn(2, 3 * 16000, generator=torch.Generator().manual_seed(0))
    noise[:, 16000:24000] *= 1e-3  # a quiet stretch, gated out
    pyloudnorm = pytest.importorskip("pyloudnorm")
    assert loudness(noise, 16000) == pytest.approx(pyloudnorm.Meter(16000).integrated_loudness(noise.T.numpy()),
                                                   abs=1e-6)
    assert loudness(noise[:, :6000], 16000) != loudness(noise[:, :6000], 16000)  # under one 400 ms block: NaN


def test_fewer_stages_decode_coarser(official):
    wav = 0.1 * torch.randn(1, 1, 12000, generator=torch.Generator().manual_seed(3))
    full = speechtok.load(f"stable-codec:{official / 'stable-codec'}?posthoc=4x729_1000bps")
    one = speechtok.load(f"stable-codec:{official / 'stable-codec'}?posthoc=4x729_1000bps&q=1")
    codes, first = full.encode(wav, 16000), one.encode(wav, 16000)
    assert one.num_codebooks == 1 and torch.equal(first.codes, codes.codes[:, :1])
    assert first.codes.shape[-1] == 150  # 12000 samples: 150 frames of 80
    coarse, fine = one.decode(first), full.decode(codes)
    assert coarse.shape == fine.shape == wav.shape and (coarse - fine).abs().max() > 1e-3


def test_attention_is_windowed_as_configured(official):
    """The config's window [3, 4] frames (the default) gives other codes than attending to every frame."""
    wav = 0.1 * torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(4))
    windowed = speechtok.load(f"stable-codec:{official / 'stable-codec'}")
    full = speechtok.load(f"stable-codec:{official / 'stable-codec'}?window=full")
    wide = speechtok.load(f"stable-codec:{official / 'stable-codec'}?window=1000,1000")
    assert windowed.num_codebooks == 2  # the default post-hoc bottleneck, 2 x 15625
    a, b, c = (t.encode(wav, 16000).codes for t in (windowed, full, wide))
    assert torch.equal(b, c) and not torch.equal(a, b)


@pytest.mark.parametrize("window", [(3, 4), (0, 0), (700, 2), None])
def test_windowed_attention_is_a_banded_mask(window):
    q, k, v = torch.randn(3, 2, 2, 1100, 16, generator=torch.Generator().manual_seed(0)).unbind(0)
    offset = torch.arange(1100)[None] - torch.arange(1100)[:, None]
    band = torch.ones_like(offset, dtype=torch.bool) if window is None else \
        (offset >= -window[0]) & (offset <= window[1])
    scores = (q @ k.transpose(-1, -2) / 4).masked_fill(~band, float("-inf"))
    torch.testing.assert_close(windowed_attention(q, k, v, None if window is None else list(window)),
                               scores.softmax(-1) @ v, atol=1e-5, rtol=1e-5)


def test_stable_codec_refuses_what_it_cannot_read(official, tmp_path):
    source = official / "stable-codec"
    with pytest.raises(CheckpointError, match="posthoc='8x9'; choose one of 1x46656_400bps"):
        speechtok.load(f"stable-codec:{source}?posthoc=8x9")
    with pytest.raises(CheckpointError, match="window='wide'; give LEFT,RIGHT"):
        speechtok.load(f"stable-codec:{source}?window=wide")
    with pytest.raises(CheckpointError, match="loudness='loud'; give a target in LUFS"):
        speechtok.load(f"stable-codec:{source}?loudness=loud")
    with pytest.raises(CheckpointError, match="q=3 is out of range 1..2"):
        speechtok.load(f"stable-codec:{source}?q=3")
    shutil.copy(source / "model.ckpt", tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="expected model_config.json and model.safetensors or model.ckpt"):
        speechtok.load(f"stable-codec:{tmp_path}")
    config = json.loads((source / "model_config.json").read_text())
    config["model"]["encoder"]["type"] = "oobleck"
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="encoder 'oobleck', decoder 'taae'; Stable Codec's are 'taae'"):
        speechtok.load(f"stable-codec:{tmp_path}")
    config["model"]["encoder"]["type"] = "taae"
    config["model"]["encoder"]["config"]["channels"] = 16  # weights of another width
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="weights do not fit the model"):
        speechtok.load(f"stable-codec:{tmp_path}")
