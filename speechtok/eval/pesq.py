"""PESQ (ITU-T P.862 / P.862.2) of a degraded signal against its reference: a thin wrapper of the `pesq` package.

The protocol is fixed so figures compare across runs and papers (`pesq_protocol()` returns it):

- wide band (`"wb"`, P.862.2) is scored at 16 kHz, narrow band (`"nb"`, P.862 mapped to MOS-LQO by P.862.1)
  at 8 kHz; both signals are resampled to that rate the same way (`speechtok.audio.resample`, soxr HQ);
- both are mono and trimmed to the shorter of the two (at the input rate, before resampling);
- neither is loudness-normalised here. (The `pesq` package divides both by their common peak, which keeps
  their relative level, and P.862 aligns the levels internally.)

Needs the optional `pesq` package: `pip install 'speechtok[eval]'`.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .. import audio
from ..errors import AudioError
from .versions import package_version

__all__ = ["pesq", "pesq_protocol", "PESQ_RATES", "mono_pair"]

PESQ_RATES: dict[str, int] = {"wb": 16000, "nb": 8000}  # mode -> the rate PESQ scores at
_STANDARDS = {"wb": "ITU-T P.862.2", "nb": "ITU-T P.862 + P.862.1 (MOS-LQO)"}


def pesq(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray, sample_rate: int, mode: str = "wb") -> float:
    """MOS-LQO of `degraded` against `reference`, both mono `[T]`, `[1, T]` or `[1, 1, T]` at `sample_rate`.

    Both are trimmed to the shorter one, then resampled with soxr to 16 kHz (`mode="wb"`) or 8 kHz (`"nb"`).
    Identity scores about 4.64 in wide band. Raises ValueError for an unknown mode or rate and `AudioError`
    (a ValueError) for empty, non-finite or multichannel audio; the `pesq` package's `PesqError`s
    (e.g. `BufferTooShortError` under 0.25 s, `NoUtterancesError` for silence) pass through.
    """
    rate = _rate(mode)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    pesq_pkg = _import_pesq()
    ref, deg = mono_pair(reference, degraded)
    ref, deg = audio.resample(ref, sample_rate, rate), audio.resample(deg, sample_rate, rate)
    return float(pesq_pkg.pesq(rate, ref, deg, mode))


def pesq_protocol(mode: str = "wb") -> dict[str, str | int]:
    """How `pesq(..., mode=mode)` scores: to store beside every PESQ figure."""
    import soxr

    rate = _rate(mode)
    return {
        "metric": f"PESQ-{mode}",
        "standard": _STANDARDS[mode],
        "package": f"pesq {package_version('pesq')}",
        "sample_rate": rate,
        "resampler": f"soxr {soxr.__version__} HQ",
        "length": "trimmed to the shorter signal",
        "level": "not normalised",
    }


def mono_pair(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two mono signals `[T]`, `[1, T]` or `[1, 1, T]` -> float32 arrays `[T]`, trimmed to the shorter one."""
    ref, deg = _mono(reference, "reference"), _mono(degraded, "degraded")
    n = min(ref.shape[-1], deg.shape[-1])
    return ref[:n], deg[:n]


def _mono(wav: Tensor | np.ndarray, source: str) -> np.ndarray:
    batch = audio.as_batch(wav, source)  # [B, C, T]
    if batch.shape[0] != 1 or batch.shape[1] != 1:
        raise AudioError(f"{source}: expected mono audio [T], [1, T] or [1, 1, T], got shape {tuple(batch.shape)}")
    if batch.shape[-1] == 0:
        raise AudioError(f"{source}: empty audio (0 samples)")
    mono = np.ascontiguousarray(batch[0, 0].detach().cpu().numpy(), dtype=np.float32)
    audio.check_finite(mono, source)
    return mono


def _rate(mode: str) -> int:
    if mode not in PESQ_RATES:
        raise ValueError(f"PESQ mode must be 'wb' (16 kHz) or 'nb' (8 kHz), got {mode!r}")
    return PESQ_RATES[mode]


def _import_pesq():
    try:
        import pesq as pesq_pkg  # the `pesq` package (ludlows/python-pesq), not `pypesq`
    except ImportError:
        raise ImportError("PESQ needs the `pesq` package: pip install 'speechtok[eval]'") from None
    return pesq_pkg
