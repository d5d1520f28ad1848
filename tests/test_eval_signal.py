"""SI-SDR, multi-scale mel distance and prosody (F0 RMSE, VDE) against values that follow from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechtok.eval import mel_distance, prosody, si_sdr
from speechtok.eval.mel_distance import FLOOR, WINDOWS_MS
from speechtok.eval.sisdr import MAX_SI_SDR_DB

from .conftest import speech


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return speech(2.0).numpy()


def _noise_at_snr(ref: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Zero-mean white noise whose energy is the (zero-mean) reference's divided by 10^(snr/10), made orthogonal
    to the reference, so that SI-SDR equals `snr_db` by construction, whatever the reference and the draw."""
    noise = np.random.default_rng(seed).standard_normal(ref.shape[-1])
    noise -= noise.mean()
    r = (ref - ref.mean()).astype(np.float64)
    noise -= (noise @ r) / (r @ r) * r
    noise *= math.sqrt((r @ r) / (noise @ noise) / 10 ** (snr_db / 10))
    return (ref + noise).astype(np.float32)


def test_si_sdr_of_a_scaled_copy_is_very_high(clip):
    assert si_sdr(clip, clip) == MAX_SI_SDR_DB
    assert si_sdr(clip, 0.5 * clip) > 90  # scale-invariant: a quieter copy is still perfect
    assert si_sdr(clip, -2.0 * clip) > 90
    assert si_sdr(clip, clip + 0.3) > 90  # zero-mean: a DC offset is not distortion


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_si_sdr_of_noise_at_a_known_snr(clip, snr):
    # exact by construction; 0.01 dB leaves room for the float32 rounding of the noisy signal only
    assert si_sdr(clip, _noise_at_snr(clip, snr)) == pytest.approx(snr, abs=0.01)


def test_si_sdr_inputs(clip):
    t = torch.from_numpy(clip)
    noisy = _noise_at_snr(clip, 5.0)
    assert si_sdr(t[None, None], torch.from_numpy(noisy)[None]) == pytest.approx(si_sdr(clip, noisy), abs=1e-9)
    assert si_sdr(clip, np.concatenate([noisy, np.zeros(500, np.float32)])) == pytest.approx(si_sdr(clip, noisy))
    with pytest.raises(ValueError, match="silent"):
        si_sdr(np.zeros(1000, np.float32), clip[:1000])
    with pytest.raises(ValueError, match="empty"):
        si_sdr(clip[:0], clip)


def test_mel_distance_identity_order_and_symmetry(clip):
    quiet, loud = _noise_at_snr(clip, 30.0), _noise_at_snr(clip, 5.0)
    assert mel_distance(clip, clip, 16000) == 0.0
    assert 0 < mel_distance(clip, quiet, 16000) < mel_distance(clip, loud, 16000)
    assert mel_distance(clip, loud, 16000) == pytest.approx(mel_distance(loud, clip, 16000), rel=1e-12)


def test_mel_distance_equals_its_definition_with_librosa(clip):
    """The same definition computed independently with librosa (Slaney mel filters, periodic Hann, centred)."""
    librosa = pytest.importorskip("librosa")
    noisy = _noise_at_snr(clip, 10.0)
    expected = []
    for ms in WINDOWS_MS:
        n_fft = int(2 ** round(math.log2(ms * 16)))
        mels = [librosa.feature.melspectrogram(y=x.astype(np.float64), sr=16000, n_fft=n_fft, hop_length=n_fft // 4,
                                               n_mels=n_fft // 8, power=1.0, center=True, pad_mode="reflect")
                for x in (clip, noisy)]
        expected.append(np.mean(np.abs(np.log10(np.maximum(mels[0], FLOOR)) - np.log10(np.maximum(mels[1], FLOOR)))))
    assert mel_distance(clip, noisy, 16000) == pytest.approx(float(np.mean(expected)), rel=1e-4)


def _voice(f0: float, seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))).astype(np.float32)


def test_prosody_identity_and_a_known_pitch_shift():
    pytest.importorskip("librosa")
    ref = _voice(150.0)
    same = prosody(ref, ref, 16000)
    assert same.f0_rmse_cents == 0.0 and same.vde == 0.0 and same.voiced_frames > 50
    shifted = prosody(ref, _voice(150.0 * 2 ** (100 / 1200)), 16000)  # one semitone up
    assert shifted.f0_rmse_cents == pytest.approx(100, abs=15)  # pyin's pitch grid is 10 cents
    assert shifted.vde < 0.05


def test_prosody_voicing_error_against_silence():
    pytest.importorskip("librosa")
    ref = _voice(200.0)
    half = ref.copy()
    half[8000:] = 0.0  # the second half unvoiced
    p = prosody(ref, half, 16000)
    assert 0.35 < p.vde < 0.6
    silent = prosody(ref, np.zeros_like(ref), 16000)
    assert math.isnan(silent.f0_rmse_cents) and silent.voiced_frames == 0 and silent.vde > 0.8


# -- YIN, the fast F0 tracker ------------------------------------------------------------------------------------


def _harmonic(f0: np.ndarray, sr: int) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)


def test_yin_follows_a_glide_and_rejects_noise_and_silence():
    from speechtok.eval.yin import yin_pitch

    sr = 16000
    t = np.arange(3 * sr) / sr
    truth = 100 * 3 ** (t / 3)  # 100 -> 300 Hz over 3 s
    track, voiced = yin_pitch(_harmonic(truth, sr), sr, 50.0, 800.0)
    assert track.shape == voiced.shape == (3 * sr // 160 + 1,)  # CREPE's frames
    core = slice(5, -5)
    assert voiced[core].all()
    cents = 1200 * np.log2(track[core] / truth[np.minimum(np.arange(track.size) * 160, truth.size - 1)][core])
    assert np.median(np.abs(cents)) < 5 and np.abs(cents).max() < 15
    noise = 0.1 * np.random.default_rng(0).standard_normal(sr).astype(np.float32)
    assert yin_pitch(noise, sr, 50.0, 800.0)[1].mean() < 0.1
    assert not yin_pitch(np.zeros(sr, np.float32), sr, 50.0, 800.0)[1].any()


def test_yin_at_other_rates_and_the_tracker_choice(monkeypatch):
    pytest.importorskip("soxr")
    import importlib

    from speechtok.eval.yin import yin_pitch

    prosody_module = importlib.import_module("speechtok.eval.prosody")  # the package exports a function of that name
    sr = 24000
    voice = _harmonic(np.full(sr, 180.0), sr)
    track, voiced = yin_pitch(voice, sr, 50.0, 800.0)
    assert track.shape == (16000 // 160 + 1,) and voiced[5:-5].all()
    assert np.abs(1200 * np.log2(track[5:-5] / 180.0)).max() < 5
    monkeypatch.setenv("SPEECHTOK_F0_TRACKER", "yin")
    assert prosody_module.pitch_backend() == "yin" and prosody_module.prosody_protocol()["backend"] == "yin"
    up = _harmonic(np.full(sr, 180.0 * 2 ** (100 / 1200)), sr)
    assert prosody(voice, up, sr).f0_rmse_cents == pytest.approx(100, abs=5)
    monkeypatch.setenv("SPEECHTOK_F0_TRACKER", "swipe")
    with pytest.raises(ValueError, match="SPEECHTOK_F0_TRACKER='swipe': unknown pitch tracker"):
        prosody_module.pitch_backend()
