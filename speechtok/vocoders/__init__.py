"""Decoders (quantized latents -> waveform: the GAN decoder and the flow-matching decoder) and what trains them:
discriminators and losses (the mel features they use are `layers.mel`).

The decoder side is imported eagerly; the training side (discriminators, losses) on first use, so that
loading a tokenizer imports no training code (DESIGN.md, "Layout").
"""

from importlib import import_module

from .base import Decoder
from .flow import FlowConfig, FlowDecoder
from .gan import VocosConfig, VocosDecoder
from .istft import ISTFT

_LAZY = {
    "DiscriminatorConfig": "discriminators", "DiscriminatorOutput": "discriminators",
    "Discriminators": "discriminators", "PeriodDiscriminator": "discriminators", "STFTDiscriminator": "discriminators",
    "MultiScaleMelLoss": "losses", "ComplexSTFTLoss": "losses", "adversarial_g_loss": "losses",
    "adversarial_d_loss": "losses",
    "feature_matching_loss": "losses", "generator_losses": "losses", "discriminator_losses": "losses",
}

__all__ = ["Decoder", "VocosConfig", "VocosDecoder", "FlowConfig", "FlowDecoder", "ISTFT", *_LAZY]
# the mel filterbank and spectrogram are shared DSP: speechtok.layers.mel


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
