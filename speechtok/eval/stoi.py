"""STOI and extended STOI (ESTOI) of a degraded signal against its reference: a thin wrapper of `pystoi`.

pystoi resamples both signals to 10 kHz itself (its own polyphase resampler), so the signals go in at their
native rate. Both are mono and trimmed to the shorter one; neither is normalised.

Needs the optional `pystoi` package: `pip install 'speechtok[eval]'`.
"""

from __future__ import annotations

import warnings

import numpy as np
from torch import Tensor

from ..errors import AudioError
from .pesq import mono_pair
from .versions import package_version

__all__ = ["stoi", "stoi_protocol"]


def stoi(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray, sample_rate: int,
         extended: bool = False) -> float:
    """STOI (or ESTOI with `extended=True`) of `degraded` against `reference`, both mono `[T]`, `[1, T]` or
    `[1, 1, T]` at `sample_rate`, trimmed to the shorter one. Identity scores 1.0.

    Raises `AudioError` (a ValueError) for empty, non-finite or multichannel audio, and where pystoi would
    warn and return 1e-5: fewer than 30 non-silent 25.6 ms frames (about 0.4 s of speech).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    pystoi = _import_pystoi()
    ref, deg = mono_pair(reference, degraded)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Not enough STFT frames", category=RuntimeWarning)
        try:
            score = pystoi.stoi(ref, deg, sample_rate, extended=extended)
        except RuntimeWarning:
            raise AudioError(
                f"reference: too little speech for STOI ({ref.shape[-1] / sample_rate:.2f} s; it needs 30 "
                "non-silent frames of 25.6 ms after silence removal)"
            ) from None
    return float(score)


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
