"""Speaker perturbation for self-supervised training: shift pitch and formants, keep the timing.

A student that sees a crop with its voice shifted, but must predict the targets of the clean crop (ContentVec,
Qian et al. 2022), cannot rely on who speaks: that is what across-speaker ABX measures. Shifting every frequency
by one ratio moves both the pitch and the formants (a shorter or longer vocal tract), as a change of speaker does,
while the frames stay aligned with the targets. Plain torch, so that it runs on the training device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LEVELS = 4  # ratios per side of 1, log-spaced: a batch is shifted in at most 2 x LEVELS groups


def voice_ratios(max_ratio: float) -> Tensor:
    """The 2 x LEVELS ratios a voice is shifted by: max_ratio ** (k / LEVELS), k = +-1 .. +-LEVELS (never 1)."""
    exponents = torch.arange(1, LEVELS + 1, dtype=torch.float64) / LEVELS
    return max_ratio ** torch.cat([-exponents.flip(0), exponents])


def stretch(wav: Tensor, factor: float, n_fft: int = 512, hop: int = 128) -> Tensor:
    """wav [T] or [B, T] -> about factor x T samples at the same pitch (phase vocoder): the STFT frames are read at
    steps of 1 / factor, magnitudes interpolated, each bin's phase advanced by its measured frequency."""
    window = torch.hann_window(n_fft, device=wav.device)
    # zero padding, not reflection: a mirrored first frame gives neighbouring bins of one partial unrelated
    # phases, which the vocoder keeps for the whole file (the partial then cancels itself)
    spec = torch.stft(wav, n_fft, hop, window=window, pad_mode="constant", return_complex=True)
    spec = F.pad(spec, (0, 1))  # a silent frame after the last, so that every step has a right neighbour
    steps = torch.arange(0, spec.shape[-1] - 1, 1 / factor, device=wav.device)
    left = steps.floor().long()
    frac = steps - left
    a, b = spec[..., left], spec[..., left + 1]
    magnitude = (1 - frac) * a.abs() + frac * b.abs()
    expected = 2 * math.pi * hop * torch.arange(spec.shape[-2], device=wav.device)[:, None] / n_fft
    deviation = b.angle() - a.angle() - expected
    deviation = deviation - 2 * math.pi * torch.round(deviation / (2 * math.pi))
    advance = torch.cumsum(deviation + expected, dim=-1)
    phase = spec[..., :1].angle() + F.pad(advance[..., :-1], (1, 0))
    length = round(wav.shape[-1] * factor)
    return torch.istft(torch.polar(magnitude, phase), n_fft, hop, window=window, length=length)


def resample_to(wav: Tensor, length: int) -> Tensor:
    """wav [..., T] -> [..., length], band-limited (the spectrum truncated or zero-padded)."""
    spectrum = torch.fft.rfft(wav)
    out = spectrum.new_zeros(*wav.shape[:-1], length // 2 + 1)
    keep = min(out.shape[-1], spectrum.shape[-1])
    out[..., :keep] = spectrum[..., :keep]
    return torch.fft.irfft(out, length) * (length / wav.shape[-1])


def shift_voice(wav: Tensor, ratio: float) -> Tensor:
    """wav [T] or [B, T] with every frequency (pitch, formants) multiplied by ratio and the same length and timing:
    stretched to ratio x T at the same pitch, then played ratio times faster."""
    if ratio == 1.0:
        return wav
    return resample_to(stretch(wav, ratio), wav.shape[-1])


def check_perturbation(prob: float, max_ratio: float) -> None:
    if not 0 <= prob <= 1 or max_ratio < 1:
        raise ValueError(f"perturb_prob must be in [0, 1] and perturb_max_ratio at least 1, got {prob} and "
                         f"{max_ratio}")


def perturb_speakers(batch: Tensor, prob: float, max_ratio: float, gen: torch.Generator) -> Tensor:
    """batch [B, 1, T] with each item's voice shifted, with probability prob, by one of `voice_ratios(max_ratio)`
    drawn uniformly; the draws come from gen (on the CPU), so a step is reproducible."""
    if prob <= 0:
        return batch
    check_perturbation(prob, max_ratio)
    chosen = torch.rand(batch.shape[0], generator=gen) < prob
    ratios = voice_ratios(max_ratio)
    levels = torch.randint(len(ratios), (batch.shape[0],), generator=gen)
    out = batch.clone()
    for level in levels[chosen].unique().tolist():
        group = (chosen & (levels == level)).nonzero()[:, 0].to(batch.device)
        out[group, 0] = shift_voice(batch[group, 0], float(ratios[level]))
    return out
