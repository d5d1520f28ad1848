"""ONNX export (speechtok/export): the graphs onnxruntime runs give the codes and audio of the torch tokenizer, for
other batch sizes, lengths and codebook counts than the ones traced; what cannot be exported says why in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import speechtok
from speechtok.export import OnnxExportError, export_onnx

from .conftest import speech

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def run(path, array: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def check_parity(tok, out, wav: torch.Tensor, frames_equal: float = 0.999) -> None:
    """wav [B, 1, T], T a multiple of the hop: the codes of at least `frames_equal` of the frames equal (onnxruntime's
    float32 convolutions round otherwise than torch's: a latent within rounding of a tie may take the other
    code), audio within 1e-4 at full and at a lower n_q."""
    wav = torch.nn.functional.pad(wav, (0, -wav.shape[-1] % tok.hop_length))  # whole frames, as config.json says
    codes = tok.encode(wav, tok.sample_rate)
    ours = run(out / "encoder.onnx", wav.numpy())
    assert ours.dtype == np.int64 and ours.shape == tuple(codes.codes.shape)
    assert (ours == codes.codes.numpy()).all(axis=1).mean() >= frames_equal
    for q in (tok.num_codebooks, 2):
        audio = run(out / "decoder.onnx", codes.codes[:, :q].numpy())
        expected = tok.decode(codes.codes[:, :q]).numpy()
        assert audio.shape == expected.shape and np.abs(audio - expected).max() < 1e-4


def test_a_tiny_codec_exports_and_onnxruntime_gives_its_codes_and_audio(tiny_ckpt, tmp_path):
    tok = speechtok.load(tiny_ckpt)
    config = export_onnx(tok, tmp_path / "onnx")
    assert json.loads((tmp_path / "onnx" / "config.json").read_text()) == config
    assert config["format"] == "speechtok-onnx" and config["tokenizer"]["config_hash"] == tok.config_hash
    # batch and length other than the traced ones; the tiny codec's 64 random 8-d codewords lie close together,
    # so near ties are far more common than in a trained codebook (measured: 1 frame in 500 differs)
    wav = torch.stack([speech(10.0), 0.5 * speech(10.0)])[:, None]
    check_parity(tok, tmp_path / "onnx", wav, frames_equal=0.99)
    check_parity(tok, tmp_path / "onnx", speech(0.32)[None, None], frames_equal=0.9)


def test_the_bundled_codec_exports_with_its_codes(tmp_path):
    tok = speechtok.load("speechtok-codec-16k")
    export_onnx(tok, tmp_path / "onnx")
    wav = torch.cat([speech(12.0), 0.5 * speech(12.0)])  # over 1,000 frames: at most 1 may differ
    check_parity(tok, tmp_path / "onnx", wav[None, None])


def test_what_cannot_be_exported_says_why(tiny_ckpt, tmp_path):
    from .test_units import tiny_units

    with pytest.raises(OnnxExportError, match="windows long inputs itself"):
        export_onnx(tiny_units(), tmp_path / "units")
    assert not (tmp_path / "units" / "encoder.onnx").exists()
    cli = subprocess.run([sys.executable, "-m", "speechtok.cli", "export-onnx", "no-such-model", "-o",
                          str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1 and "Traceback" not in cli.stderr


def test_the_cli_writes_the_directory(tiny_ckpt, tmp_path):
    out = tmp_path / "exported"
    cli = subprocess.run([sys.executable, "-m", "speechtok.cli", "export-onnx", str(tiny_ckpt), "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-1000:]
    assert cli.stdout.strip() == str(out)  # stdout: the data; the exporter's progress went to stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "decoder.onnx", "encoder.onnx"]


def _causal_tiny(tiny_ckpt):
    """The tiny codec with a causal encoder (random weights): what the streaming variant is for."""
    from dataclasses import replace

    from speechtok.models import build_codec

    tok = speechtok.load(tiny_ckpt)
    torch.manual_seed(0)
    causal = build_codec(replace(tok.config, encoder=replace(tok.config.encoder, causal=True))).eval()
    causal.quantizer.load_state_dict(tok.quantizer.state_dict())
    causal.decoder.load_state_dict(tok.decoder.state_dict())
    return causal


def test_the_streaming_graphs_give_the_offline_codes_and_audio(tiny_ckpt, tmp_path):
    """encoder_step / decoder_step (steps of 2 frames) with the state fed back, run by the numpy + onnxruntime
    runtime from pushes of 1 sample, 37 ms and 1 s: the codes of Tokenizer.encode (>= 99% of frames, as above) and
    its audio within 1e-4."""
    from speechtok.export.onnx_runtime import OnnxDecodeStream, OnnxEncodeStream

    tok = _causal_tiny(tiny_ckpt)
    streaming = export_onnx(tok, tmp_path / "onnx", stream_step=2)["streaming"]
    assert streaming["encoder"]["right_frames"] == 0 and streaming["encoder"]["left_frames"] > 0
    assert streaming["encoder"]["latency_seconds"] == pytest.approx(2 * 0.02)
    noise = 0.1 * torch.randn(32_000, generator=torch.Generator().manual_seed(0))  # no speech needed: parity
    for chunk, n in ((1, 6_001), (592, 31_999), (16000, 31_999)):  # not whole frames: the last zero-padded
        data = noise[:n].numpy()
        offline = tok.encode(torch.from_numpy(data), 16000).codes[0].numpy()
        stream = OnnxEncodeStream(tmp_path / "onnx")
        parts = [stream.push(data[i : i + chunk]) for i in range(0, data.size, chunk)]
        codes = np.concatenate([*parts, stream.flush()], axis=-1)
        assert codes.shape == offline.shape and (codes == offline).all(axis=0).mean() >= 0.99, chunk
        assert stream.state is not None  # the step graph ran: past the first frames
    audio = tok.decode(torch.from_numpy(offline)[None]).numpy().reshape(-1)
    dec = OnnxDecodeStream(tmp_path / "onnx")
    pieces = [dec.push(offline[:, i : i + 7]) for i in range(0, offline.shape[-1], 7)]
    streamed = np.concatenate([*pieces, dec.flush()])
    assert dec.state is not None and streamed.size == offline.shape[-1] * 320
    assert np.abs(streamed[: audio.size] - audio[: streamed.size]).max() < 1e-4


def test_streaming_export_refuses_what_cannot_stream(tmp_path):
    from .test_units import tiny_units

    with pytest.raises(OnnxExportError, match="cannot be exported"):
        export_onnx(tiny_units(), tmp_path / "units", stream_step=1)
