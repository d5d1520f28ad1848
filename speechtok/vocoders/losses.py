"""GAN decoder losses: multi-scale mel reconstruction, least-squares adversarial terms, feature matching.

Everything returns unweighted terms under DAC-style keys ("gan/mel", "gan/adv_g", "gan/feature",
"gan/adv_d"); the recipe weights them by the same keys (DAC uses mel 15, adv_g 1, feature 2).

Least squares (LSGAN), as in HiFi-GAN and DAC, rather than hinge (MelGAN, Vocos): its gradient grows with
the distance of a score from its target and never saturates, so the generator still gets a signal where
the discriminator is confident; hinge gives zero gradient once a score is past its margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .discriminators import DiscriminatorOutput
from .mel import MelSpectrogram


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
    """The generator step's terms. wav_hat, wav [B, 1, T]; real = D(wav), fake = D(wav_hat)."""
    return {
        "gan/mel": mel_loss(wav_hat, wav),
        "gan/adv_g": adversarial_g_loss(fake),
        "gan/feature": feature_matching_loss(real, fake),
    }


def discriminator_losses(real: Sequence[DiscriminatorOutput],
                         fake: Sequence[DiscriminatorOutput]) -> dict[str, Tensor]:
    """The discriminator step's term. real = D(wav), fake = D(wav_hat.detach())."""
    return {"gan/adv_d": adversarial_d_loss(real, fake)}
