"""Long files: `encode_file` (and so `speechtok encode FILE`) streams a file longer than one chunk from disk, in
memory that does not grow with its duration, and its codes are those of `encode` on the whole file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtok import audio
from speechtok.codes import Codes
from speechtok.errors import AudioError

from .conftest import speech

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread

# What encoding a longer file may add to the peak RSS of a process that has encoded a shorter one (warm: torch,
# the model, the chunk's activations): allocator noise and the codes (90k frames x 8 int64 = 6 MB at 30 min).
# Reading the file whole adds at least one float32 copy of it: 115 MB for 30 min at 16 kHz, 212 MB for 20 min
# at 44.1 kHz (plus the resampling copies).
GROWTH_BOUND_MB = 48


def write_tone(path: Path, seconds: float, sample_rate: int, channels: int = 1) -> Path:
    """A PCM-16 file of a wobbling tone, written block by block: never the whole signal in memory."""
    total, block = int(seconds * sample_rate), 1 << 20
    with sf.SoundFile(path, "w", sample_rate, channels, "PCM_16") as f:
        for k in range(0, total, block):
            t = np.arange(k, min(k + block, total)) / sample_rate
            tone = (0.3 * np.sin(2 * np.pi * (200 + 50 * np.sin(0.3 * t)) * t)).astype(np.float32)
            f.write(np.repeat(tone[:, None], channels, axis=1))
    return path


def speech_file(path: Path, num_samples: int, sample_rate: int, channels: int = 1) -> Path:
    """Real speech (repeated as needed) [num_samples, channels] at `sample_rate`, written as float32."""
    clip = audio.resample(speech(8.0).numpy(), 16000, sample_rate)
    wav = np.resize(clip, num_samples)
    sf.write(path, np.stack([np.roll(wav, 7 * c) for c in range(channels)], 1), sample_rate, subtype="FLOAT")
    return path


# Encodes each file with the CLI in this one process, printing the peak RSS (MB) after each. One process: what a
# longer file adds over a shorter one is measured with the same torch, model and allocator state.
PEAKS = """
import json, resource, sys
from speechtok.cli import main
model, peaks = sys.argv[1], []
for path in sys.argv[2:]:
    assert main(["encode", path, "-m", model, "-o", path + ".npy"]) == 0, path
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # kB on Linux
print(json.dumps(peaks))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in kB on Linux")
def test_a_long_file_is_encoded_in_bounded_memory(tiny_ckpt, tmp_path):
    # 3.5 min has a first, a middle and a last chunk: every chunk shape the long files have (their activations)
    short = [write_tone(tmp_path / "short16.wav", 210, 16000), write_tone(tmp_path / "short44.wav", 210, 44100)]
    long = [write_tone(tmp_path / "long16.wav", 1800, 16000), write_tone(tmp_path / "long44.wav", 1200, 44100)]
    # a fixed mmap threshold: freed tensors go back to the OS, so the peak follows what is held (glibc; ignored
    # elsewhere), not where the heap's free space happened to lie
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="262144")
    out = subprocess.run([sys.executable, "-c", PEAKS, str(tiny_ckpt), *map(str, short + long)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peaks = json.loads(out.stdout.splitlines()[-1])
    growth = max(peaks[2:]) - max(peaks[:2])
    assert growth < GROWTH_BOUND_MB, f"peak RSS (MB) {peaks}: the long files add {growth:.0f} MB"
    assert [Codes.load(f"{p}.npy").codes.shape[-1] for p in long] == [90000, 60000]  # 50 frames/s, all there


def streamed(tok, path: Path, monkeypatch, **kwargs) -> Codes:
    """`tok.encode_file(path, **kwargs)`, checked to stream: never the whole file at once (no `audio.load`)."""
    def whole(*args, **kwargs):
        raise AssertionError("read whole")

    with monkeypatch.context() as m:
        m.setattr(audio, "load", whole)
        return tok.encode_file(path, **kwargs)


# Chunks of 2 s (100 frames; the tiny codec's context is 9 frames) over lengths that end just past a chunk, on a
# chunk and its context, on chunks, and in many chunks; read in blocks that do not align with them.
@pytest.mark.parametrize("sample_rate, channels, num_samples", [
    (16000, 1, 100 * 320 + 1), (16000, 1, 109 * 320), (16000, 1, 300 * 320), (16000, 2, 300 * 320 + 5),
    (16000, 1, 777_777), (24000, 2, 370_001), (44100, 1, 441_000 + 3)])
def test_streamed_codes_are_the_whole_file_codes(tok, tmp_path, monkeypatch, sample_rate, channels, num_samples):
    path = speech_file(tmp_path / "speech.wav", num_samples, sample_rate, channels)
    tok.chunk_seconds = 2.0
    monkeypatch.setattr(audio, "STREAM_BLOCK_FRAMES", 4099)
    got = streamed(tok, path, monkeypatch)
    want = tok.encode(audio.load(path, tok.sample_rate), tok.sample_rate)
    assert torch.equal(got.codes, want.codes)  # the same chunks of the same samples: exactly
    assert torch.equal(got.lengths, want.lengths) and torch.equal(got.num_samples, want.num_samples)
    assert got.tokenizer == want.tokenizer


def test_a_bad_block_of_a_streamed_file_is_an_audio_error(tok, tmp_path, monkeypatch):
    tok.chunk_seconds = 2.0
    wav = np.resize(speech(2.0).numpy(), 5 * 16000)
    wav[4 * 16000] = np.nan  # in a late block
    sf.write(tmp_path / "nan.wav", wav, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: audio contains NaN"):
        streamed(tok, tmp_path / "nan.wav", monkeypatch)


def test_a_truncated_streamed_file_needs_allow_truncated(tok, tmp_path, monkeypatch):
    tok.chunk_seconds = 2.0
    path = speech_file(tmp_path / "cut.wav", 6 * 16000, 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 16000 * 4])  # a second of float32 samples missing
    with pytest.raises(AudioError, match="cut.wav: truncated"):
        streamed(tok, path, monkeypatch)
    got = streamed(tok, path, monkeypatch, allow_truncated=True)
    want = tok.encode(audio.load(path, 16000, allow_truncated=True), 16000)
    assert torch.equal(got.codes, want.codes) and int(got.num_samples) == 5 * 16000

