"""DualCodec behind the speechtok API, against the `dualcodec` package's own `Inference.encode` / `decode`: the
package's model built small in a process of its own (tests/peers/dualcodec_official.py), saved in the publisher's
layout (amphion/dualcodec's files, and a w2v-BERT 2.0 folder), loaded by path."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import speechtok
from speechtok.errors import CheckpointError, CodesError

from .test_adapters import _check_batch
from .test_xcodec2 import run_official

pytest.importorskip("transformers")
if importlib.util.find_spec("dac") is None:
    pytest.skip("descript-audio-codec not installed (see .ci/peers.txt)", allow_module_level=True)

# .ci/run installs the package there (with easydict), beside the venv: its own dependencies pull a CUDA torch
PINNED_DUALCODEC = Path(sys.prefix) / "pinned" / "dualcodec-0.4.2"
LENGTHS = (48000, 61111)


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return run_official("dualcodec_official.py", tmp_path_factory.mktemp("dualcodec"), PINNED_DUALCODEC)


def spec(official: Path, options: str = "") -> str:
    return f"dualcodec:{official / 'dualcodec'}?w2v={official / 'w2v'}{options}"


def test_dualcodec_matches_the_package(official):
    from safetensors.torch import load_file

    expected = load_file(official / "expected.safetensors")
    tok = speechtok.load(spec(official))
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks) == (24000, 12.5, 4)
    assert tok.codebook_sizes == [64, 16, 16, 16] and tok.codebook_size == 64 and tok.mixed_codebook_sizes
    assert tok.bitrate == pytest.approx(12.5 * (6 + 3 * 4)) and tok.streams == {"semantic": (0, 1), "acoustic": (1, 4)}
    assert tok.identity()["codebook_sizes"] == [64, 16, 16, 16]
    for n in LENGTHS:
        codes = tok.encode(expected[f"wav_{n}"], 24000)
        assert len(set(codes.codes[0, 0].tolist())) > 4 and len(set(codes.codes[0, 1].tolist())) > 2  # codes vary
        torch.testing.assert_close(codes.codes, expected[f"codes_{n}"].long(), rtol=0, atol=0)
        theirs = expected[f"audio_{n}"]  # the package's decoder output, a few samples short of whole frames
        assert theirs.std() > 0.02
        torch.testing.assert_close(tok.decode(codes)[..., :theirs.shape[-1]], theirs, atol=1e-5, rtol=0)
    _check_batch(tok, 24000, 40000)


def test_dualcodec_codebooks_keep_their_own_sizes(official):
    tok = speechtok.load(spec(official, "&q=2"))
    wav = 0.1 * torch.randn(1, 1, 30000, generator=torch.Generator().manual_seed(5))
    codes = tok.encode(wav, 24000)
    assert codes.codes.shape[1] == 2 and tok.codebook_sizes == [64, 16]
    bad = codes.codes.clone()
    bad[0, 1, 0] = 20  # a valid semantic code, past the acoustic codebook's 16
    with pytest.raises(CodesError, match=r"codebook 1 has 16 codes"):
        tok.decode(dataclasses.replace(codes, codes=bad))
    semantic_only = speechtok.load(spec(official, "&q=1"))
    assert semantic_only.decode(semantic_only.encode(wav, 24000)).shape == wav.shape


def test_dualcodec_refuses_what_it_cannot_read(official, tmp_path):
    with pytest.raises(CheckpointError, match=r"give w2v-BERT 2\.0's folder too"):
        speechtok.load(f"dualcodec:{official / 'dualcodec'}")
    with pytest.raises(CheckpointError, match="model='6hz'; choose one of 12hz_v1, 25hz_v1"):
        speechtok.load(spec(official, "&model=6hz"))
    (tmp_path / "dualcodec_12hz_16384_4096.safetensors").write_bytes(
        (official / "dualcodec" / "dualcodec_12hz_16384_4096.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="no w2vbert2_mean_var_stats_emilia.pt"):
        speechtok.load(f"dualcodec:{tmp_path}?w2v={official / 'w2v'}")


@pytest.mark.parametrize("rates", [(24000, 16000), (16000, 24000), (44100, 16000)])
def test_sinc_resample_is_torchaudios(rates):
    """DualCodec's semantic input is torchaudio's resampling: `audio.sinc_resample` computes it without torchaudio."""
    from speechtok.audio import sinc_resample

    a, b = rates
    t = torch.arange(a) / a
    tone = torch.sin(2 * torch.pi * 440 * t)[None, None]
    out = sinc_resample(tone, a, b)
    assert out.shape == (1, 1, b)  # ceil(T * b / a)
    ideal = torch.sin(2 * torch.pi * 440 * torch.arange(b) / b)
    assert (out[0, 0, 200:-200] - ideal[200:-200]).abs().max() < 1e-3  # a 440 Hz tone passes unchanged
    functional = pytest.importorskip("torchaudio.functional")
    noise = torch.randn(2, 1, 37777, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sinc_resample(noise, a, b), functional.resample(noise, a, b), atol=1e-4, rtol=0)
