"""Streaming encode and decode (speechtok/streaming): audio pushed in chunks of any size gives exactly the offline
codes, codes pushed in pieces give the offline audio; what cannot stream says why."""

from __future__ import annotations

import pytest
import torch

import speechtok
from speechtok.streaming import DecodeStream, EncodeStream, NotStreamableError

from .conftest import speech


@pytest.fixture(scope="module")
def tok():
    return speechtok.load("speechtok-codec-16k")


def streamed_codes(tok, wav: torch.Tensor, chunk: int, n_q: int | None = None, step: int = 1) -> torch.Tensor:
    stream = EncodeStream(tok, n_q=n_q, step_frames=step)
    parts = [stream.push(wav[i : i + chunk]) for i in range(0, wav.numel(), chunk)]
    return torch.cat([*parts, stream.flush()], dim=-1)


@pytest.mark.parametrize("chunk", [320, 592, 16000])  # a frame, 37 ms, 1 s
def test_streamed_codes_are_the_offline_codes(tok, chunk):
    wav = speech(1.5)[:23_999]  # not a whole number of frames: the last one is zero-padded, as offline
    offline = tok.encode(wav, 16000).codes
    assert torch.equal(streamed_codes(tok, wav, chunk), offline)
    assert torch.equal(streamed_codes(tok, wav, chunk, n_q=1, step=4), offline[:, :1])


def test_one_sample_at_a_time(tok):
    wav = speech(0.5)
    stream = EncodeStream(tok)
    parts = [stream.push(wav[i : i + 1]) for i in range(wav.numel())]
    out = [p.shape[-1] for p in parts]
    assert sum(out) + stream.flush().shape[-1] == 25 and max(out) == 1  # a frame at a time, once its context is in
    stream.reset()
    assert torch.equal(streamed_codes(tok, wav, 1), tok.encode(wav, 16000).codes)


def test_streamed_audio_is_the_offline_audio(tok):
    codes = tok.encode(speech(1.0), 16000).codes
    for q, piece, step in ((tok.num_codebooks, 1, 1), (tok.num_codebooks, 7, 3), (1, codes.shape[-1], 4)):
        offline = tok.decode(codes[:, :q])
        stream = DecodeStream(tok, step_frames=step)
        parts = [stream.push(codes[:, :q, i : i + piece]) for i in range(0, codes.shape[-1], piece)]
        audio = torch.cat([*parts, stream.flush()], dim=-1)
        assert audio.shape == offline.shape and (audio - offline).abs().max() < 1e-5, (q, piece, step)


def test_latency_and_misuse(tok):
    enc, dec = EncodeStream(tok), DecodeStream(tok)
    assert enc.latency_seconds == pytest.approx((1 + 9) * 0.02) and dec.latency_seconds == pytest.approx(32 * 0.02)
    enc.push(speech(0.2))
    enc.flush()
    with pytest.raises(RuntimeError, match="reset"):
        enc.push(speech(0.1))
    dec.push(tok.encode(speech(0.2), 16000).codes)
    with pytest.raises(ValueError, match="one q a stream"):
        dec.push(torch.zeros(1, 2, 3, dtype=torch.long))


def test_what_cannot_stream_says_why():
    from .test_units import tiny_units

    with pytest.raises(NotStreamableError, match="windows or batches long inputs itself"):
        EncodeStream(tiny_units())


def test_a_causal_codec_streams_one_frame_behind():
    """The codec_causal recipe's encoder reads no sample past a frame: its stream needs no right context, and its
    codes are still the offline codes (random weights at the recipe's size)."""
    from speechtok.config import from_dict
    from speechtok.models import CodecConfig, build_codec
    from speechtok.training.recipe import load_recipe

    recipe = load_recipe("codec_causal")
    assert recipe.task_config["name"] == "speechtok-codec-16k-causal"
    torch.manual_seed(0)
    causal = build_codec(from_dict(CodecConfig, recipe.model)).eval()
    stream = EncodeStream(causal)
    assert stream.right == 0 and stream.latency_seconds == pytest.approx(0.02)
    for chunk, wav in ((1, speech(0.3)[:4_700]), (592, speech(1.0)[:15_900])):
        assert torch.equal(streamed_codes(causal, wav, chunk), causal.encode(wav, 16000).codes)


def test_the_cli_streams_a_file_and_stdin(tok, tmp_path):
    """`speechtok encode --stream`: each frame's codes printed once complete, from a file read in 37 ms chunks or
    raw 16-bit PCM on stdin; -o writes the codes file. All are the offline codes."""
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    from speechtok.codes import Codes

    pcm = (speech(1.0).numpy() * 32767).astype(np.int16)
    wav = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    sf.write(tmp_path / "in.wav", pcm, 16000, subtype="PCM_16")
    offline = tok.encode(wav, 16000).codes[0]
    cmd = [sys.executable, "-m", "speechtok.cli", "encode", "--stream", "--chunk-ms", "37"]
    lines = subprocess.run([*cmd, str(tmp_path / "in.wav")], capture_output=True, text=True, timeout=120)
    assert lines.returncode == 0, lines.stderr
    rows = [list(map(int, line.split())) for line in lines.stdout.splitlines()]
    assert [r[0] for r in rows] == list(range(offline.shape[-1])) and torch.equal(
        torch.tensor([r[1:] for r in rows]).T, offline)
    piped = subprocess.run([*cmd, "-", "-o", str(tmp_path / "out.npy")], input=pcm.tobytes(), capture_output=True,
                           timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert torch.equal(Codes.load(tmp_path / "out.npy").codes[0], offline) and "latency 200 ms" in piped.stderr.decode()
    bad = subprocess.run([*cmd, str(tmp_path / "in.wav"), str(tmp_path / "in.wav")], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "one input" in bad.stderr


def test_info_says_what_streams(tok):
    from speechtok.cli import describe

    from .test_units import tiny_units

    assert describe(tok)["streaming"] == "encode 200 ms; decode 640 ms"
    assert describe(tok)["onnx_export"].startswith("yes")
    units = describe(tiny_units())
    assert units["streaming"].startswith("encode: no (its encoder windows") and units["onnx_export"].startswith("no")


def test_a_recurrent_encoder_streams_long_files_in_the_offline_windows_only(tmp_path):
    """An LSTM reads the whole past: a long file still streams from disk in the offline path's windows (the codes
    of `encode`), while a live stream in finer steps is refused."""
    import dataclasses

    import soundfile as sf

    from speechtok.models import build_codec

    from .conftest import tiny_config

    cfg = tiny_config()
    tok = build_codec(dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, lstm_layers=1))).eval()
    tok.chunk_seconds = 1.0
    sf.write(tmp_path / "long.wav", speech(3.0).numpy(), 16000)
    assert torch.equal(tok.encode_file(tmp_path / "long.wav").codes, tok.encode(speech(3.0), 16000).codes)
    with pytest.raises(NotStreamableError, match="recurrent layer"):
        EncodeStream(tok)
