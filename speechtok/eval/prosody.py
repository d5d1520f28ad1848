"""Prosody: F0 RMSE in cents and the voicing decision error (VDE) of a resynthesis against its reference,
both tracked by the same tracker under the same settings: CREPE tiny (`torchcrepe`, see `crepe.py`) where it is
installed (`pip install 'speechtok[judges]'`), else probabilistic YIN (`librosa.pyin`); or, chosen with
`speechtok eval --f0-tracker yin`, plain YIN (`yin.py`: ~0.004 core-s per audio second against CREPE tiny's
~0.08, for quick runs). The protocol records which (`tracker`); figures of different trackers do not compare.

- frames: hop 10 ms, F0 searched in [`fmin`, `fmax`] (50-800 Hz by default: low male voices to children);
  pyin: `frame_length` = the power of two nearest 64 ms; CREPE: 1024 samples at 16 kHz;
- F0 RMSE: sqrt(mean (1200 log2(f0_deg / f0_ref))^2) over the frames voiced in both; NaN where there is none;
- VDE: the fraction of all frames where one signal is voiced and the other is not (0 for identity).

Needs `librosa`: `pip install 'speechtok[eval]'`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from .pesq import mono_pair
from .versions import package_version

__all__ = ["Prosody", "prosody", "pitch", "pitch_backend", "prosody_protocol"]

FMIN, FMAX = 50.0, 800.0


@dataclass(frozen=True)
class Prosody:
    f0_rmse_cents: float  # NaN where no frame is voiced in both signals
    vde: float  # voicing decision error, in [0, 1]
    voiced_frames: int  # frames voiced in both (the F0 RMSE's support)
    frames: int


def prosody(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray, sample_rate: int,
            fmin: float = FMIN, fmax: float = FMAX,
            reference_pitch: tuple[np.ndarray, np.ndarray] | None = None, backend: str | None = None) -> Prosody:
    """F0 RMSE (cents) and VDE of `degraded` against `reference`, mono `[T]`, `[1, T]` or `[1, 1, T]`.
    `reference_pitch`: the reference's `pitch(...)` track with the same settings, when already computed (pyin
    is slow); frames past the shorter track are left out. `backend`: the tracker (`pitch`)."""
    ref, deg = mono_pair(reference, degraded)
    f_ref, v_ref = reference_pitch if reference_pitch is not None else pitch(ref, sample_rate, fmin, fmax, backend)
    same = deg.shape == ref.shape and np.array_equal(deg, ref)  # pyin is deterministic: no need to track twice
    f_deg, v_deg = (f_ref, v_ref) if same else pitch(deg, sample_rate, fmin, fmax, backend)
    n = min(f_ref.shape[0], f_deg.shape[0])
    f_ref, v_ref, f_deg, v_deg = f_ref[:n], v_ref[:n], f_deg[:n], v_deg[:n]
    both = v_ref & v_deg & np.isfinite(f_ref) & np.isfinite(f_deg)
    cents = 1200.0 * np.log2(f_deg[both] / f_ref[both])
    rmse = float(np.sqrt(np.mean(cents**2))) if both.any() else math.nan
    return Prosody(rmse, float(np.mean(v_ref != v_deg)), int(both.sum()), int(v_ref.size))


TRACKERS = ("crepe", "yin", "pyin")
TRACKER_ENV = "SPEECHTOK_F0_TRACKER"  # `speechtok eval --f0-tracker` sets it for its worker processes


def pitch_backend() -> str:
    """$SPEECHTOK_F0_TRACKER (crepe, yin or pyin) where set; else "crepe" where torchcrepe imports, else "pyin"."""
    import os

    chosen = os.environ.get(TRACKER_ENV)
    if chosen:
        if chosen not in TRACKERS:
            raise ValueError(f"{TRACKER_ENV}={chosen!r}: unknown pitch tracker; known: {', '.join(TRACKERS)}")
        return chosen
    from .crepe import torchcrepe_available

    return "crepe" if torchcrepe_available() else "pyin"


def pitch(wav: np.ndarray, sample_rate: int, fmin: float = FMIN, fmax: float = FMAX,
          backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """F0 track: (f0 [frames] in Hz, NaN where unvoiced; voiced [frames] bool). `backend`: "crepe", "yin", "pyin"
    or None (`pitch_backend()`)."""
    backend = backend or pitch_backend()
    if backend == "crepe":
        from .crepe import crepe_pitch

        return crepe_pitch(wav, sample_rate, fmin, fmax)
    if backend == "yin":
        from .yin import yin_pitch

        return yin_pitch(wav, sample_rate, fmin, fmax)
    if backend != "pyin":
        raise ValueError(f"unknown pitch tracker {backend!r}; known: {', '.join(TRACKERS)}")
    return _pyin(wav, sample_rate, fmin, fmax)


def _pyin(wav: np.ndarray, sample_rate: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    frame_length, hop = _frames(sample_rate)
    if wav.shape[-1] < frame_length:
        wav = np.pad(wav, (0, frame_length - wav.shape[-1]))
    f0, voiced, _ = librosa.pyin(np.asarray(wav, dtype=np.float32), fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=frame_length, hop_length=hop)
    return f0, voiced.astype(bool)


def prosody_protocol(sample_rate: int = 16000) -> dict:
    common = {"metric": "F0 RMSE (cents) and VDE", "fmin_hz": FMIN, "fmax_hz": FMAX, "hop": "10 ms",
              "f0_rmse": "over frames voiced in both", "vde": "share of frames whose voicing differs",
              "length": "trimmed to the shorter signal"}
    backend = pitch_backend()
    if backend == "yin":
        from .yin import SILENCE_DB, VOICING_APERIODICITY, YIN_THRESHOLD

        return {**common, "tracker": f"speechtok YIN (threshold {YIN_THRESHOLD})", "backend": "yin",
                "frame": "1024 samples at 16 kHz (input resampled with soxr HQ), lags up to fmin's period",
                "voicing": f"aperiodicity (3-frame majority) <= {VOICING_APERIODICITY} and level > {SILENCE_DB} dBFS"}
    if backend == "crepe":
        from .crepe import CREPE_MODEL, VOICING_THRESHOLD, crepe_weights_sha256

        return {**common, "tracker": f"torchcrepe {package_version('torchcrepe')} CREPE {CREPE_MODEL}",
                "backend": "crepe", "weights_sha256": crepe_weights_sha256(),
                "frame": "1024 samples at 16 kHz (input resampled with soxr HQ)",
                "decoder": "weighted mean of the 9 bins around the argmax (no dither)",
                "voicing": f"periodicity (3-frame median, 0 below -60 dB A-weighted) >= {VOICING_THRESHOLD}"}
    frame_length, hop = _frames(sample_rate)
    version = package_version("librosa")
    return {**common, "tracker": f"librosa {version} pyin", "backend": "pyin",
            "frame": f"{frame_length} samples at {sample_rate} Hz (nearest power of two to 64 ms)",
            "sample_rate": "native rate of the reference"}


def _frames(sample_rate: int) -> tuple[int, int]:
    return int(2 ** round(math.log2(0.064 * sample_rate))), max(1, round(0.01 * sample_rate))
