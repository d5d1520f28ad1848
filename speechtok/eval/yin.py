"""YIN pitch tracking (de Cheveigné & Kawahara 2002), vectorised over frames: the F0 metric's fast tracker
(`speechtok eval --f0-tracker yin`), about twenty times cheaper than CREPE tiny on a CPU.

At 16 kHz (soxr HQ first), 10 ms hop, frames of 1024 samples on the hop grid (zero-padded at the ends; placed so
the compared samples centre on the hop), so a track has the frames of CREPE's (T_16k // 160 + 1). Per frame: the
difference function over a 704-sample window for lags up to 320 (50 Hz), by FFT; its cumulative-mean-normalised
form d'; the lag is the first local minimum of d' under 0.1 in [16000 / fmax, 16000 / fmin], else the global
minimum there; parabolic interpolation refines it. Voiced: d' at that lag (the aperiodicity) at most 0.35, as the
majority of 3 frames, and the frame's level above -60 dB full scale. Against CREPE tiny on 14 LibriSpeech and
speechocean762 training utterances, the voicing decisions agree on 76% of frames, and 87% of the frames both call
voiced are within 50 cents: its figures do not compare with CREPE's (the protocol names the tracker).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import audio

__all__ = ["yin_pitch", "YIN_THRESHOLD", "VOICING_APERIODICITY"]

RATE, HOP, FRAME = 16000, 160, 1024
YIN_THRESHOLD = 0.1  # the first dip of d' under it is the period (YIN's absolute threshold)
VOICING_APERIODICITY = 0.35  # voiced where d' at the chosen lag is at most this
SILENCE_DB = -60.0


def yin_pitch(wav: np.ndarray, sample_rate: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """wav [T] -> (f0 [frames] in Hz, NaN where unvoiced; voiced [frames] bool), frames = T_16k // 160 + 1."""
    wav = audio.resample(np.asarray(wav, dtype=np.float32).reshape(-1), sample_rate, RATE)
    x = torch.from_numpy(np.ascontiguousarray(wav)).double()
    lag_min, lag_max = max(2, int(RATE / fmax)), min(FRAME // 2, int(np.ceil(RATE / fmin)))
    left = (FRAME - lag_max) // 2 + lag_max // 4  # compared samples centred on the hop at a lag of lag_max / 2
    frames = F.pad(x, (left, FRAME - left)).unfold(0, FRAME, HOP)  # [N, FRAME], N = T // HOP + 1
    d = _cmnd(frames, FRAME - lag_max, lag_max)  # [N, lag_max + 1]
    lag, aperiodicity = _choose_lag(d, lag_min, lag_max)
    level_db = 10 * torch.log10(frames.pow(2).mean(-1).clamp_min(1e-20))
    voiced = _median3(aperiodicity <= VOICING_APERIODICITY) & (level_db > SILENCE_DB)
    f0 = (RATE / lag).numpy()
    voiced_np = voiced.numpy()
    return np.where(voiced_np, f0, np.nan), voiced_np


def _cmnd(frames: torch.Tensor, window: int, lag_max: int) -> torch.Tensor:
    """YIN's cumulative-mean-normalised difference d'(tau), tau = 0..lag_max, of each frame's first `window`
    samples against the frame shifted by tau."""
    n = 1 << int(np.ceil(np.log2(frames.shape[-1] + window)))
    spec = torch.fft.rfft(frames, n) * torch.fft.rfft(frames[:, :window], n).conj()
    corr = torch.fft.irfft(spec, n)[:, : lag_max + 1]  # r(tau) = sum_j x_j x_{j+tau}, j < window
    energy = torch.cumsum(F.pad(frames.pow(2), (1, 0)), dim=-1)
    e0 = energy[:, window:window + 1]
    e_tau = energy[:, window:window + lag_max + 1] - energy[:, : lag_max + 1]
    diff = (e0 + e_tau - 2 * corr).clamp_min(0)
    tau = torch.arange(lag_max + 1, dtype=diff.dtype)
    mean = torch.cumsum(diff[:, 1:], dim=-1) / tau[1:]
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = torch.where(mean > 0, diff[:, 1:] / mean.clamp_min(1e-30), torch.ones_like(mean))
    return cmnd


def _choose_lag(d: torch.Tensor, lag_min: int, lag_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(refined lag [N] in samples, d' at the chosen integer lag [N])"""
    band = d[:, lag_min: lag_max]  # candidates whose right neighbour exists
    nxt = d[:, lag_min + 1: lag_max + 1]
    dip = (band < YIN_THRESHOLD) & (band <= nxt)
    first = torch.where(dip.any(-1), dip.int().argmax(-1), band.argmin(-1)) + lag_min
    rows = torch.arange(d.shape[0])
    left, mid = d[rows, (first - 1).clamp(min=0)], d[rows, first]
    right = d[rows, (first + 1).clamp(max=lag_max)]
    curve = left + right - 2 * mid
    shift = torch.where(curve > 0, 0.5 * (left - right) / curve.clamp_min(1e-12), torch.zeros_like(mid))
    return first.double() + shift.clamp(-1, 1), mid


def _median3(flags: torch.Tensor) -> torch.Tensor:
    """Majority of each frame and its neighbours (a 3-frame median of booleans); the ends keep their own."""
    if flags.numel() < 3:
        return flags
    out = flags.clone()
    out[1:-1] = (flags[:-2].int() + flags[1:-1].int() + flags[2:].int()) >= 2
    return out
