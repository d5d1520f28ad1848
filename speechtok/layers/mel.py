"""Mel filterbank and log-mel spectrogram, computed with numpy and torch only (no torchaudio, no librosa).

The mel scale and the filter normalisation are Slaney's (librosa's default, `htk=False, norm="slaney"`):
linear below 1 kHz, logarithmic above, and each triangle scaled to unit area so that wide high-frequency
filters do not outweigh narrow low ones. `tests/test_vocoders.py` checks the filterbank against librosa.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from . import autocast_off

_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0  # where the log part starts
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15 mel
_LOG_STEP = math.log(6.4) / 27.0  # log(Hz) per mel above 1 kHz


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, _F_SP * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """Triangular filters -> [n_mels, n_fft // 2 + 1] float32; equals `librosa.filters.mel` (Slaney scale and norm)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
                         f"sample_rate={sample_rate}")
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # [F]
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # [M + 2]
    widths = np.diff(edges_hz)  # [M + 1]
    ramps = edges_hz[:, None] - fft_hz[None, :]  # [M + 2, F]
    rising = -ramps[:-2] / widths[:-1, None]  # [M, F]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]  # unit area per filter
    return torch.from_numpy(weights).float()


class MelSpectrogram(nn.Module):
    """log10 of the mel-weighted STFT magnitude, clamped at `clamp_min` (as DAC's mel loss).

    Frames are centred with zero padding (librosa's default since 0.10), so any input length works and
    a signal of T samples gives T // hop_length + 1 frames. The window is a Hann of length n_fft.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, f_min: float = 0.0,
                 f_max: float | None = None, clamp_min: float = 1e-5):
        super().__init__()
        self.n_fft, self.hop_length, self.clamp_min = n_fft, hop_length, clamp_min
        # derived from the arguments, so kept out of the state dict
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        """wav [B, 1, T] or [B, T] -> log-mel [B, n_mels, T // hop_length + 1]"""
        if wav.ndim == 3 and wav.shape[1] == 1:
            wav = rearrange(wav, "b 1 t -> b t")
        if wav.ndim != 2:
            raise ValueError(f"expected wav [B, 1, T] or [B, T], got shape {tuple(wav.shape)}")
        with autocast_off(wav):  # float32 under mixed precision: log-mel losses compare small magnitudes
            spec = torch.stft(wav.float(), self.n_fft, self.hop_length, window=self.window, center=True,
                              pad_mode="constant", return_complex=True)  # [B, F, frames]
            mel = torch.einsum("mf,bft->bmt", self.filters, spec.abs())
            return mel.clamp(min=self.clamp_min).log10()
