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
from .reference_cache import fingerprint, remember

__all__ = ["mel_distance", "mel_distance_protocol", "WINDOWS_MS"]

WINDOWS_MS: tuple[float, ...] = (16.0, 32.0, 64.0, 128.0)
FLOOR = 1e-5


def mel_distance(reference: Tensor | np.ndarray, degraded: Tensor | np.ndarray, sample_rate: int,
                 windows_ms: tuple[float, ...] = WINDOWS_MS, cache: dict | None = None) -> float:
    """Mean over scales of mean |log10 mel(ref) - log10 mel(deg)|; inputs mono `[T]`, `[1, T]` or `[1, 1, T]`.
    `cache`: a dict kept across the resyntheses of one reference (eval's), where its log-mels are computed once."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    ref, deg = mono_pair(reference, degraded)
    ref_logs = remember(cache, "mel_reference", (fingerprint(ref), sample_rate, tuple(windows_ms)),
                        lambda: _log_mels(ref, sample_rate, windows_ms))
    deg_logs = _log_mels(deg, sample_rate, windows_ms)
    return float(np.mean([float((r - d).abs().mean()) for r, d in zip(ref_logs, deg_logs)]))


def _log_mels(x: np.ndarray, sample_rate: int, windows_ms: tuple[float, ...]) -> list[Tensor]:
    """log10 mel magnitudes [M, frames] of x [T] at each scale, in float64."""
    from ..layers.mel import mel_filterbank

    wav = torch.from_numpy(np.ascontiguousarray(x)).double()
    out = []
    for ms in windows_ms:
        n_fft = _n_fft(ms, sample_rate)
        spec = torch.stft(wav, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft, dtype=torch.float64),
                          center=True, pad_mode="reflect" if wav.shape[-1] > n_fft // 2 else "constant",
                          return_complex=True).abs()  # [F, frames]
        mel = mel_filterbank(sample_rate, n_fft, n_fft // 8).double() @ spec
        out.append(torch.log10(mel.clamp_min(FLOOR)))
    return out


def mel_distance_protocol(sample_rate: int | None = None) -> dict:
    return {"metric": "mel distance", "windows_ms": list(WINDOWS_MS), "hop": "window / 4", "window": "hann",
            "n_mels": "n_fft / 8 (Slaney)", "spectrum": "magnitude", "log": f"log10, floored at {FLOOR}",
            "sample_rate": sample_rate or "native rate of the reference", "length": "trimmed to the shorter signal",
            "level": "not normalised"}


def _n_fft(ms: float, sample_rate: int) -> int:
    return int(2 ** round(np.log2(ms * sample_rate / 1000)))
