"""STOI and extended STOI (ESTOI) of a degraded signal against its reference: `pystoi`'s algorithm on its own
helpers, split so that eval computes the reference's side once for all its resyntheses.

Both signals are resampled to 10 kHz by pystoi's own polyphase resampler, so they go in at their native rate.
Both are mono and trimmed to the shorter one; neither is normalised.

Needs the optional `pystoi` package: `pip install 'speechtok[eval]'`.
"""

from __future__ import annotations

import functools

import numpy as np
from torch import Tensor

from ..errors import AudioError
from .pesq import mono_pair
from .reference_cache import fingerprint, remember
from .versions import package_version

__all__ = ["stoi", "stoi_protocol"]


def stoi(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray, sample_rate: int,
         extended: bool = False, cache: dict | None = None) -> float:
    """STOI (or ESTOI with `extended=True`) of `degraded` against `reference`, both mono `[T]`, `[1, T]` or
    `[1, 1, T]` at `sample_rate`, trimmed to the shorter one. Identity scores 1.0. `cache`: a dict kept across
    the resyntheses of one reference (eval's), where the reference's side (resampled, silent frames found, 1/3
    octave bands) is computed once, and a resynthesis' bands once for STOI and ESTOI.

    pystoi's algorithm step by step with its own helpers, so the figures are its own (to 1e-12; tested).
    Raises `AudioError` (a ValueError) for empty, non-finite or multichannel audio, and where pystoi would
    warn and return 1e-5: fewer than 30 non-silent 25.6 ms frames (about 0.4 s of speech).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    ref, deg = mono_pair(reference, degraded)
    mask, x_tob = remember(cache, "stoi_reference", (fingerprint(ref), sample_rate),
                           lambda: _reference_bands(ref, sample_rate))
    if x_tob.shape[-1] < SEGMENT:
        raise AudioError(f"reference: too little speech for STOI ({ref.shape[-1] / sample_rate:.2f} s; it needs 30 "
                         "non-silent frames of 25.6 ms after silence removal)")
    y_tob = remember(cache, "stoi_degraded", (fingerprint(deg), sample_rate),
                     lambda: _bands(_resampled(deg, sample_rate), mask))
    return float(_extended(x_tob, y_tob) if extended else _classic(x_tob, y_tob))


SEGMENT = 30  # frames of the intermediate intelligibility measure (pystoi's N)


def _resampled(x: np.ndarray, sample_rate: int) -> np.ndarray:
    ps = _pystoi_module()
    return x if sample_rate == ps.FS else _import_pystoi().utils.resample_oct(x, ps.FS, sample_rate)


def _frames(x: np.ndarray) -> np.ndarray:
    ps = _pystoi_module()
    w = np.hanning(ps.N_FRAME + 2)[1:-1]
    return np.array([w * x[i:i + ps.N_FRAME] for i in range(0, len(x) - ps.N_FRAME, ps.N_FRAME // 2)])


def _reference_bands(ref: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(the frames above the reference's dynamic range, its 1/3-octave band magnitudes [15, frames])"""
    ps = _pystoi_module()
    frames = _frames(_resampled(ref, sample_rate))
    energies = 20 * np.log10(np.linalg.norm(frames, axis=1) + _import_pystoi().utils.EPS)
    mask = (np.max(energies) - ps.DYN_RANGE - energies) < 0
    return mask, _tob(frames[mask])


def _bands(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _tob(_frames(x)[mask])


def _tob(kept_frames: np.ndarray) -> np.ndarray:
    ps = _pystoi_module()
    utils = _import_pystoi().utils
    signal = utils._overlap_and_add(kept_frames, ps.N_FRAME // 2)
    spec = utils.stft(signal, ps.N_FRAME, ps.NFFT, overlap=2).transpose()
    return np.sqrt(np.matmul(ps.OBM, np.square(np.abs(spec))))


def _segments(tob: np.ndarray) -> np.ndarray:
    return np.array([tob[:, m - SEGMENT:m] for m in range(SEGMENT, tob.shape[1] + 1)])


def _classic(x_tob: np.ndarray, y_tob: np.ndarray) -> float:
    ps = _pystoi_module()
    eps = _import_pystoi().utils.EPS
    x, y = _segments(x_tob), _segments(y_tob)
    y = y * (np.linalg.norm(x, axis=2, keepdims=True) / (np.linalg.norm(y, axis=2, keepdims=True) + eps))
    y = np.minimum(y, x * (1 + 10 ** (-ps.BETA / 20)))  # clipped at the lower SDR bound
    y = y - np.mean(y, axis=2, keepdims=True)
    x = x - np.mean(x, axis=2, keepdims=True)
    y /= np.linalg.norm(y, axis=2, keepdims=True) + eps
    x /= np.linalg.norm(x, axis=2, keepdims=True) + eps
    return float(np.sum(y * x) / (x.shape[0] * x.shape[1]))


def _extended(x_tob: np.ndarray, y_tob: np.ndarray) -> float:
    normalize = _import_pystoi().utils.row_col_normalize
    x, y = normalize(_segments(x_tob)), normalize(_segments(y_tob))
    return float(np.sum(x * y / SEGMENT) / x.shape[0])


def stoi_protocol(extended: bool = False) -> dict[str, str | int]:
    """How `stoi(..., extended=extended)` scores: to store beside every STOI figure."""
    version = package_version("pystoi")
    return {
        "metric": "ESTOI" if extended else "STOI",
        "package": f"pystoi {version}",
        "sample_rate": 10000,
        "resampler": "pystoi's own (scipy resample_poly), from the native rate",
        "length": "trimmed to the shorter signal",
        "level": "not normalised",
    }


def _import_pystoi():
    try:
        import pystoi
    except ImportError:
        raise ImportError("STOI needs the `pystoi` package: pip install 'speechtok[eval]'") from None
    return pystoi


@functools.cache
def _pystoi_module():
    """pystoi's `stoi` module (its constants: the package's `stoi` name is the function)."""
    import importlib

    _import_pystoi()
    return importlib.import_module("pystoi.stoi")
