"""GAN decoder losses: multi-scale mel reconstruction, least-squares adversarial terms, feature matching.

Everything returns unweighted terms under DAC-style keys ("gan/mel", "gan/adv_g", "gan/feature",
"gan/adv_d", and "gan/complex_stft" for the phase-aware term); the recipe weights them by the same keys (DAC
uses mel 15, adv_g 1, feature 2).

Least squares (LSGAN), as in HiFi-GAN and DAC, rather than hinge (MelGAN, Vocos): its gradient grows with
the distance of a score from its target and never saturates, so the generator still gets a signal where
the discriminator is confident; hinge gives zero gradient once a score is past its margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.mel import MelSpectrogram
from .discriminators import DiscriminatorOutput


class MultiScaleMelLoss(nn.Module):
    """Sum over window sizes of the L1 distance between log-mel spectrograms (DAC's mel loss).

    Small windows resolve transients, large ones harmonics; the number of mel bands grows with the window
    so that every band keeps a few FFT bins. Hop = n_fft // 4. Summed, not averaged, so DAC's weight applies.
    """

    def __init__(self, sample_rate: int, n_ffts: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
                 n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320), f_min: float = 0.0,
                 f_max: float | None = None, clamp_min: float = 1e-5):
        super().__init__()
        if len(n_ffts) != len(n_mels):
            raise ValueError(f"one n_mels per n_fft, got n_ffts={tuple(n_ffts)}, n_mels={tuple(n_mels)}")
        self.mels = nn.ModuleList(
            MelSpectrogram(sample_rate, n, n // 4, m, f_min, f_max, clamp_min) for n, m in zip(n_ffts, n_mels)
        )

    def forward(self, wav_hat: Tensor, wav: Tensor) -> Tensor:
        """wav_hat, wav [B, 1, T] -> scalar"""
        if wav_hat.shape != wav.shape:
            raise ValueError(f"wav_hat {tuple(wav_hat.shape)} and wav {tuple(wav.shape)} must have one shape")
        return sum((F.l1_loss(mel(wav_hat), mel(wav)) for mel in self.mels), wav.new_zeros(()))


class ComplexSTFTLoss(nn.Module):
    """Phase-aware multi-resolution STFT loss: at each window size, the L1 distance between power-law compressed
    complex spectra (real and imaginary parts) plus that between their compressed magnitudes, summed over sizes.

    A mel loss ignores phase, so a decoder trained by it alone must find the phase by itself (the adversarial
    terms usually teach it); the complex term gives it that signal directly. Compression |X|^c e^{i angle X}
    with c = 0.3 (Braun & Tashev 2021) keeps quiet bins from being drowned by loud harmonics. Hop = n_fft // 4.
    """

    def __init__(self, n_ffts: Sequence[int] = (256, 512, 1024, 2048), compression: float = 0.3,
                 eps: float = 1e-7):
        super().__init__()
        self.n_ffts, self.compression, self.eps = tuple(n_ffts), compression, eps
        for n in self.n_ffts:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def _compressed(self, wav: Tensor, n_fft: int) -> Tensor:
        spec = torch.stft(wav.float().flatten(0, 1), n_fft, n_fft // 4, window=getattr(self, f"window_{n_fft}"),
                          return_complex=True)
        mag = spec.abs().clamp_min(self.eps)
        return spec * (mag ** (self.compression - 1))  # |X|^c with the phase of X

    def forward(self, wav_hat: Tensor, wav: Tensor) -> Tensor:
        """wav_hat, wav [B, 1, T] -> scalar"""
        if wav_hat.shape != wav.shape:
            raise ValueError(f"wav_hat {tuple(wav_hat.shape)} and wav {tuple(wav.shape)} must have one shape")
        total = wav.new_zeros((), dtype=torch.float32)
        for n in self.n_ffts:
            x_hat, x = self._compressed(wav_hat, n), self._compressed(wav, n)
            total = total + F.l1_loss(torch.view_as_real(x_hat), torch.view_as_real(x)) \
                + F.l1_loss(x_hat.abs(), x.abs())
        return total


def adversarial_g_loss(fake: Sequence[DiscriminatorOutput]) -> Tensor:
    """LSGAN generator term: sum over sub-discriminators of mean (1 - D(G(z)))^2."""
    return sum(((1 - out.logits) ** 2).mean() for out in fake)


def adversarial_d_loss(real: Sequence[DiscriminatorOutput], fake: Sequence[DiscriminatorOutput]) -> Tensor:
    """LSGAN discriminator term: sum over sub-discriminators of mean (1 - D(x))^2 + mean D(G(z))^2.
    Pass the discriminator outputs on detached generated audio."""
    return sum(((1 - r.logits) ** 2).mean() + (f.logits**2).mean() for r, f in zip(real, fake, strict=True))


def feature_matching_loss(real: Sequence[DiscriminatorOutput], fake: Sequence[DiscriminatorOutput],
                          eps: float = 1e-8) -> Tensor:
    """Mean over all layers of all sub-discriminators of the L1 distance between feature maps, each layer
    divided by the mean magnitude of its real features (EnCodec's normalisation), so that no layer
    dominates by scale. The real features are treated as constants."""
    terms = [
        F.l1_loss(f_feat, r_feat.detach()) / (r_feat.detach().abs().mean() + eps)
        for r, f in zip(real, fake, strict=True)
        for r_feat, f_feat in zip(r.features, f.features, strict=True)
    ]
    return torch.stack(terms).mean()


def generator_losses(wav_hat: Tensor, wav: Tensor, real: Sequence[DiscriminatorOutput],
                     fake: Sequence[DiscriminatorOutput], mel_loss: MultiScaleMelLoss) -> dict[str, Tensor]:
    """The generator step's adversarial-phase terms. wav_hat, wav [B, 1, T]; real = D(wav), fake = D(wav_hat)."""
    return {
        "gan/mel": mel_loss(wav_hat, wav),
        "gan/adv_g": adversarial_g_loss(fake),
        "gan/feature": feature_matching_loss(real, fake),
    }


def discriminator_losses(real: Sequence[DiscriminatorOutput],
                         fake: Sequence[DiscriminatorOutput]) -> dict[str, Tensor]:
    """The discriminator step's term. real = D(wav), fake = D(wav_hat.detach())."""
    return {"gan/adv_d": adversarial_d_loss(real, fake)}
