"""Tokenizer families: each is a config dataclass and a builder that assembles encoder, quantizer and decoder.

`config.json` names its family; loading looks the family up here (a registry, not an if-chain).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .codecs.seanet import SEANetConfig, SEANetEncoder
from .quantizers.rvq import RVQ, RVQConfig
from .tokenizer import Tokenizer
from .vocoders.gan import VocosConfig, VocosDecoder


@dataclass(frozen=True)
class Family:
    config_cls: type
    build: Callable[..., Tokenizer]  # build(cfg, norm=False, name=None) -> Tokenizer


FAMILIES: dict[str, Family] = {}


def register_family(name: str, config_cls: type):
    def deco(build):
        FAMILIES[name] = Family(config_cls, build)
        return build

    return deco


@dataclass(frozen=True)
class CodecConfig:
    """SoundStream/EnCodec-style codec: SEANet encoder, RVQ, Vocos-style GAN decoder."""

    sample_rate: int = 16000
    encoder: SEANetConfig = field(default_factory=SEANetConfig)
    quantizer: RVQConfig = field(default_factory=RVQConfig)
    decoder: VocosConfig = field(default_factory=VocosConfig)

    def __post_init__(self):
        hop = math.prod(self.encoder.strides)
        if self.decoder.hop_length != hop:
            raise ValueError(f"decoder hop_length {self.decoder.hop_length} != encoder hop {hop}")
        if self.quantizer.dim != self.encoder.dim or self.decoder.input_dim != self.encoder.dim:
            raise ValueError(
                f"latent dims disagree: encoder {self.encoder.dim}, quantizer {self.quantizer.dim}, "
                f"decoder {self.decoder.input_dim}"
            )


@register_family("codec", CodecConfig)
def build_codec(cfg: CodecConfig, norm: bool = False, name: str | None = None) -> Tokenizer:
    """`norm=True` adds weight norm to the encoder's convs (training); inference checkpoints hold folded weights."""
    return Tokenizer(
        SEANetEncoder(cfg.encoder, norm=norm), RVQ(cfg.quantizer), VocosDecoder(cfg.decoder),
        sample_rate=cfg.sample_rate, family="codec", config=cfg, name=name,
    )
