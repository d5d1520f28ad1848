"""Multi-scale mel distance: the mean absolute difference of log10 mel magnitudes, averaged over several
STFT resolutions (as the multi-scale mel losses of DAC and others, here a metric: lower is better, 0 for
identity).

At each scale the window is `window_ms` long (rounded to a power of two in samples), the hop a quarter of it,
Hann window, magnitude (not power) spectra, `n_fft // 8` Slaney mel filters from 0 Hz to Nyquist
(`speechtok.layers.mel.mel_filterbank`, equal to librosa's), floored at `1e-5` before log10.
Both signals are mono at the same rate (the reference's native one) and trimmed to the shorter one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .pesq import mono_pair

__all__ = ["mel_distance", "mel_distance_protocol", "WINDOWS_MS"]

WINDOWS_MS: tuple[float, ...] = (16.0, 32.0, 64.0, 128.0)
FLOOR = 1e-5


def mel_distance(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray, sample_rate: int,
                 windows_ms: tuple[float, ...] = WINDOWS_MS) -> float:
    """Mean over scales of mean |log10 mel(ref) - log10 mel(deg)|; inputs mono `[T]`, `[1, T]` or `[1, 1, T]`."""
    from ..layers.mel import mel_filterbank

    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    ref, deg = mono_pair(reference, degraded)
    pair = torch.from_numpy(np.stack([ref, deg])).double()  # [2, T]
    distances = []
    for ms in windows_ms:
        n_fft = _n_fft(ms, sample_rate)
        spec = torch.stft(pair, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft, dtype=torch.float64),
                          center=True, pad_mode="reflect" if pair.shape[-1] > n_fft // 2 else "constant",
                          return_complex=True).abs()  # [2, F, frames]
        mel = mel_filterbank(sample_rate, n_fft, n_fft // 8).double() @ spec  # [2, M, frames]
        log_mel = torch.log10(mel.clamp_min(FLOOR))
        distances.append(float((log_mel[0] - log_mel[1]).abs().mean()))
    return float(np.mean(distances))


def mel_distance_protocol(sample_rate: int | None = None) -> dict:
    return {"metric": "mel distance", "windows_ms": list(WINDOWS_MS), "hop": "window / 4", "window": "hann",
            "n_mels": "n_fft / 8 (Slaney)", "spectrum": "magnitude", "log": f"log10, floored at {FLOOR}",
            "sample_rate": sample_rate or "native rate of the reference", "length": "trimmed to the shorter signal",
            "level": "not normalised"}


def _n_fft(ms: float, sample_rate: int) -> int:
    return int(2 ** round(np.log2(ms * sample_rate / 1000)))
