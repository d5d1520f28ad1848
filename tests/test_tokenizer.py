import json

import numpy as np
import pytest
import torch

import speechtok
from speechtok import Codes
from speechtok.errors import AudioError, CodesError
from speechtok.models import build_codec

from .conftest import speech, tiny_config


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100])
@pytest.mark.parametrize("shape", ["T", "CT", "BCT"])
def test_shape_contract(tok, sample_rate, shape):
    n = int(1.3 * sample_rate)
    wav = {"T": torch.randn(n), "CT": torch.randn(2, n), "BCT": torch.randn(3, 2, n)}[shape] * 0.1
    codes = tok.encode(wav, sample_rate)
    batch = 3 if shape == "BCT" else 1
    frames = -(-round(n * 16000 / sample_rate) // 320)
    assert codes.codes.shape == (batch, 8, frames)
    assert codes.codes.dtype == torch.int64
    assert codes.lengths.tolist() == [frames] * batch
    assert codes.frame_rate == 50.0 and codes.hop_length == 320
    out = tok.decode(codes)
    assert out.shape == (batch, 1, round(n * 16000 / sample_rate))


def test_numpy_input_and_frame_times(tok):
    codes = tok.encode(speech(1.0).numpy(), 16000)
    assert codes.codes.shape == (1, 8, 50)
    times = codes.frame_times()
    assert times[0] == 0.0 and times[1] == pytest.approx(0.02)


def test_identity_properties(tok):
    assert tok.sample_rate == 16000 and tok.frame_rate == 50.0
    assert tok.num_codebooks == 8 and tok.codebook_size == 64
    assert tok.bitrate == pytest.approx(50 * 8 * 6)


def test_deterministic(tok, tiny_ckpt):
    wav = speech(2.0)
    first = tok.encode(wav, 16000).codes
    assert torch.equal(first, tok.encode(wav, 16000).codes)
    assert torch.equal(first, speechtok.load(tiny_ckpt).encode(wav, 16000).codes)
    assert first.unique().numel() > 8  # real codes, not one repeated index


def test_every_n_q(tok):
    wav = speech(1.5)
    full = tok.encode(wav, 16000).codes
    previous = None
    for q in range(1, 9):
        codes = tok.encode(wav, 16000, n_q=q)
        assert codes.codes.shape[1] == q
        assert torch.equal(codes.codes, full[:, :q])  # residual VQ: a prefix of the full codes
        out = tok.decode(codes)
        assert out.shape == (1, 1, wav.numel()) and torch.isfinite(out).all()
        if previous is not None:
            assert not torch.equal(out, previous)
        previous = out
    with pytest.raises(ValueError, match="n_q"):
        tok.encode(wav, 16000, n_q=9)


def test_save_load_roundtrip(tiny_ckpt, tmp_path):
    tok = speechtok.load(tiny_ckpt)
    again = tmp_path / "again"
    tok.save(again)
    meta = json.loads((again / "config.json").read_text())
    for key in ("format_version", "family", "speechtok_version", "sample_rate", "frame_rate", "hop_length",
                "num_codebooks", "codebook_size", "config"):
        assert key in meta
    wav = speech(2.0)
    assert torch.equal(tok.encode(wav, 16000).codes, speechtok.load(again).encode(wav, 16000).codes)


def test_weight_norm_folded_at_load(tmp_path):
    """The training model (weight norm) and the loaded inference model (folded) give the same latents."""
    torch.manual_seed(0)
    trained = build_codec(tiny_config(), norm=True, name="tiny-codec").eval()
    loaded = speechtok.load(trained.save(tmp_path / "ckpt"))
    assert not any("parametrizations" in k for k in loaded.state_dict())
    assert any("parametrizations" in k for k in trained.state_dict())
    wav = speech(1.0)[None, None]
    with torch.inference_mode():
        torch.testing.assert_close(loaded.encoder(wav), trained.encoder(wav), atol=1e-5, rtol=1e-4)
    assert not loaded.training


@pytest.mark.parametrize("fmt", ["npy", "pt", "safetensors"])
def test_codes_file_roundtrip(tok, tmp_path, fmt):
    codes = tok.encode(speech(1.0), 16000)
    path = codes.save(tmp_path / f"x.{fmt}")
    back = Codes.load(path)
    assert torch.equal(back.codes, codes.codes)
    assert back.tokenizer["config_hash"] == tok.config_hash
    assert back.frame_rate == 50.0 and int(back.num_samples[0]) == 16000
    if fmt == "npy":
        assert np.load(path).dtype == np.int16
    torch.testing.assert_close(tok.decode(back), tok.decode(codes))


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wav, message",
    [
        (torch.zeros(0), "empty"),
        (torch.tensor([0.0, float("nan")] * 400), "NaN"),
        (torch.tensor([0.0, float("inf")] * 400), "NaN or infinite"),
        (torch.zeros(1, 1, 1, 800), "shape"),
        (torch.zeros(100), "too short"),
        (torch.zeros(800, dtype=torch.int16), "floating point"),
    ],
)
def test_bad_audio(tok, wav, message):
    with pytest.raises(AudioError, match=message):
        tok.encode(wav, 16000)


def test_bad_audio_file(tok, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioError, match="bad.wav: unreadable"):
        tok.encode_file(bad)
    with pytest.raises(AudioError, match="no such file"):
        tok.encode_file(tmp_path / "missing.wav")


def test_codes_of_another_tokenizer(tok, tmp_path):
    codes = tok.encode(speech(1.0), 16000)
    codes.tokenizer = {**codes.tokenizer, "config_hash": "0123456789ab", "name": "someone-else"}
    with pytest.raises(CodesError, match="someone-else"):
        tok.decode(codes)
    with pytest.raises(CodesError, match="out of range"):
        tok.decode(torch.full((1, 8, 10), 64))
    with pytest.raises(CodesError, match="codebooks"):
        tok.decode(torch.zeros(1, 9, 10, dtype=torch.long))
    with pytest.raises(CodesError, match="integer"):
        tok.decode(torch.zeros(1, 8, 10))
