"""PESQ and STOI wrappers (speechtok.eval) on real speech from ../shared/data: they must equal the packages
called directly on the same arrays, and score identity, noise, 8 kHz and mismatched lengths as documented."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

pesq_pkg = pytest.importorskip("pesq")
pystoi = pytest.importorskip("pystoi")
sf = pytest.importorskip("soundfile")

from speechtok.audio import resample  # noqa: E402
from speechtok.eval import pesq, stoi  # noqa: E402
from speechtok.eval.pesq import pesq_protocol  # noqa: E402
from speechtok.eval.stoi import stoi_protocol  # noqa: E402

from .conftest import DATA, NEEDS_DATA  # noqa: E402


def _test_clip(corpus: str, min_seconds: float) -> tuple[np.ndarray, int]:
    """The first `test`-split utterance of `corpus` at least `min_seconds` long -> (float32 [T], rate)."""
    manifest = DATA / corpus / "manifest.tsv"
    if not manifest.is_file():
        pytest.skip(NEEDS_DATA)
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["split"] == "test" and float(row["duration_s"]) >= min_seconds:
                wav, sr = sf.read(DATA / row["path"], dtype="float32")
                return wav, sr
    pytest.skip(f"no test clip of {min_seconds} s in {manifest}")


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """3 s of LibriSpeech (LS-test), 16 kHz mono."""
    wav, sr = _test_clip("librispeech_samples", 3.0)
    assert sr == 16000
    return wav[: 3 * sr], sr


@pytest.fixture(scope="module")
def noisy(speech) -> np.ndarray:
    wav, _ = speech
    noise = torch.randn(wav.shape[-1], generator=torch.Generator().manual_seed(0)).numpy()
    return (wav + 0.05 * noise).astype(np.float32)


def test_pesq_equals_package(speech, noisy):
    ref, sr = speech
    assert pesq(ref, noisy, sr) == pesq_pkg.pesq(sr, ref, noisy, "wb")


def test_pesq_resamples_both_signals_alike(speech, noisy):
    ref, _ = speech
    ref8, deg8 = resample(ref, 16000, 8000), resample(noisy, 16000, 8000)
    expected = pesq_pkg.pesq(16000, resample(ref8, 8000, 16000), resample(deg8, 8000, 16000), "wb")
    assert pesq(ref8, deg8, 8000, mode="wb") == expected


def test_stoi_equals_package(speech, noisy):
    # to 1e-12, not bit for bit: pystoi itself varies in the last bits between calls on the same arrays
    # (numpy's reductions on freshly allocated temporaries)
    ref, sr = speech
    assert stoi(ref, noisy, sr) == pytest.approx(pystoi.stoi(ref, noisy, sr), abs=1e-12)
    assert stoi(ref, noisy, sr, extended=True) == pytest.approx(pystoi.stoi(ref, noisy, sr, extended=True), abs=1e-12)


def test_identity_scores(speech):
    ref, sr = speech
    assert abs(pesq(ref, ref, sr) - 4.64) < 0.01
    assert abs(stoi(ref, ref, sr) - 1.0) < 1e-6
    assert abs(stoi(ref, ref, sr, extended=True) - 1.0) < 1e-6


def test_noise_lowers_scores(speech, noisy):
    ref, sr = speech
    assert pesq(ref, noisy, sr) < pesq(ref, ref, sr) - 1.0
    assert stoi(ref, noisy, sr) < stoi(ref, ref, sr) - 0.05


def test_narrow_band_at_8k_on_fsdd():
    digit, sr = _test_clip("fsdd", 0.5)
    assert sr == 8000
    ref = torch.from_numpy(digit)[None, None]  # [1, 1, T] tensors are accepted
    noise = 0.02 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    identity = pesq(ref, ref, sr, mode="nb")
    assert 4.4 < identity < 4.65  # P.862.1 MOS-LQO tops out near 4.55
    assert pesq(ref, ref + noise, sr, mode="nb") < identity
    assert pesq(ref, ref + noise, sr, mode="nb") == pesq_pkg.pesq(sr, digit, (ref + noise).numpy()[0, 0], "nb")


def test_mismatched_lengths_trim_to_the_shorter(speech, noisy):
    ref, sr = speech
    longer = np.concatenate([noisy, np.zeros(1234, np.float32)])
    n = ref.shape[-1] - 800
    assert pesq(ref, longer, sr) == pesq(ref, noisy, sr)
    assert pesq(ref, noisy[:n], sr) == pesq(ref[:n], noisy[:n], sr)
    assert stoi(ref, longer, sr) == pytest.approx(stoi(ref, noisy, sr), abs=1e-12)
    assert stoi(ref[:n], noisy, sr) == pytest.approx(stoi(ref[:n], noisy[:n], sr), abs=1e-12)


def test_mono_shapes_and_tensors_agree(speech, noisy):
    ref, sr = speech
    expected = pesq(ref, noisy, sr)
    assert pesq(torch.from_numpy(ref)[None], torch.from_numpy(noisy)[None, None], sr) == expected
    assert stoi(torch.from_numpy(ref)[None], noisy[None], sr) == pytest.approx(stoi(ref, noisy, sr), abs=1e-12)


def test_bad_input_raises(speech):
    ref, sr = speech
    with pytest.raises(ValueError, match="mode"):
        pesq(ref, ref, sr, mode="fb")
    with pytest.raises(ValueError, match="empty"):
        pesq(ref, ref[:0], sr)
    with pytest.raises(ValueError, match="empty"):
        stoi(np.zeros(0, np.float32), ref, sr)
    with pytest.raises(ValueError, match="mono"):
        pesq(np.stack([ref, ref]), ref, sr)
    with pytest.raises(ValueError, match="NaN"):
        stoi(ref, np.full_like(ref, np.nan), sr)
    with pytest.raises(ValueError, match="too little speech"):
        stoi(ref[:1600], ref[:1600], sr)  # pystoi alone would warn and return 1e-5


def test_protocols_name_rate_and_package():
    wb, nb = pesq_protocol("wb"), pesq_protocol("nb")
    assert (wb["sample_rate"], nb["sample_rate"]) == (16000, 8000)
    assert wb["package"].startswith("pesq ") and "soxr" in wb["resampler"]
    assert stoi_protocol(extended=True)["metric"] == "ESTOI"
    with pytest.raises(ValueError, match="mode"):
        pesq_protocol("swb")
