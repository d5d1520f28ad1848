"""Decoders (quantized latents -> waveform) and what trains them: discriminators, losses, mel features."""

from .base import Decoder
from .discriminators import (
    DiscriminatorConfig,
    DiscriminatorOutput,
    Discriminators,
    PeriodDiscriminator,
    STFTDiscriminator,
)
from .gan import VocosConfig, VocosDecoder
from .istft import ISTFT
from .losses import (
    MultiScaleMelLoss,
    adversarial_d_loss,
    adversarial_g_loss,
    discriminator_losses,
    feature_matching_loss,
    generator_losses,
)
from .mel import MelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz

__all__ = [
    "Decoder", "VocosConfig", "VocosDecoder", "ISTFT",
    "DiscriminatorConfig", "DiscriminatorOutput", "Discriminators", "PeriodDiscriminator", "STFTDiscriminator",
    "MultiScaleMelLoss", "adversarial_g_loss", "adversarial_d_loss", "feature_matching_loss",
    "generator_losses", "discriminator_losses",
    "MelSpectrogram", "mel_filterbank", "hz_to_mel", "mel_to_hz",
]
