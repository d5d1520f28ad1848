"""Scale-invariant signal-to-distortion ratio (SI-SDR, Le Roux et al., ICASSP 2019), in dB.

The estimate is projected onto the reference: target = a * reference with a = <est, ref> / <ref, ref>, and
SI-SDR = 10 log10(|target|^2 / |est - target|^2). Both are mono, trimmed to the shorter one, and (as in the
paper) made zero-mean first. Computed in float64. A perfect copy would score +inf: scores are capped at
`MAX_SI_SDR_DB` (100 dB, past 16-bit PCM's ~98 dB of dynamic range, where differences mean nothing), so means
stay finite and JSON-safe.
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from ..errors import AudioError
from .pesq import mono_pair

__all__ = ["si_sdr", "si_sdr_protocol", "MAX_SI_SDR_DB"]

MAX_SI_SDR_DB = 100.0


def si_sdr(reference: Tensor | np.ndarray, estimate: Tensor | np.ndarray, zero_mean: bool = True) -> float:
    """SI-SDR in dB of `estimate` against `reference`, both mono `[T]`, `[1, T]` or `[1, 1, T]`, capped at
    `MAX_SI_SDR_DB`. Raises `AudioError` (a ValueError) for empty, non-finite, multichannel or silent references."""
    ref, est = (a.astype(np.float64) for a in mono_pair(reference, estimate))
    if zero_mean:
        ref, est = ref - ref.mean(), est - est.mean()
    ref_energy = float(ref @ ref)
    if ref_energy == 0.0:
        raise AudioError("reference: silent (zero energy); SI-SDR is undefined")
    target = (float(est @ ref) / ref_energy) * ref
    noise = est - target
    target_energy, noise_energy = float(target @ target), float(noise @ noise)
    if noise_energy == 0.0:
        return MAX_SI_SDR_DB
    if target_energy == 0.0:  # estimate orthogonal to (or silent against) the reference
        return -MAX_SI_SDR_DB
    return float(np.clip(10.0 * math.log10(target_energy / noise_energy), -MAX_SI_SDR_DB, MAX_SI_SDR_DB))


def si_sdr_protocol() -> dict[str, str | float]:
    return {"metric": "SI-SDR", "unit": "dB", "definition": "Le Roux et al. 2019, zero-mean, float64",
            "cap_db": MAX_SI_SDR_DB, "sample_rate": "native rate of the reference",
            "length": "trimmed to the shorter signal", "level": "scale-invariant (no normalisation needed)"}
