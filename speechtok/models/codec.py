"""The codec family: SoundStream/EnCodec-style SEANet encoder, RVQ (or FSQ), Vocos-style GAN decoder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..codecs.seanet import SEANetConfig, SEANetEncoder
from ..quantizers import FSQConfig, RVQConfig, build_quantizer, quantizer_config
from ..tokenizer import Tokenizer
from ..vocoders.gan import VocosConfig, VocosDecoder
from .registry import register_family


@dataclass(frozen=True)
class CodecConfig:
    """SoundStream/EnCodec-style codec: SEANet encoder, RVQ (or FSQ), Vocos-style GAN decoder."""

    sample_rate: int = 16000
    encoder: SEANetConfig = field(default_factory=SEANetConfig)
    quantizer: RVQConfig | FSQConfig = field(default_factory=RVQConfig)
    decoder: VocosConfig = field(default_factory=VocosConfig)

    def __post_init__(self):
        if isinstance(self.quantizer, dict):  # from config.json or a recipe: `kind` picks the quantizer
            object.__setattr__(self, "quantizer", quantizer_config(self.quantizer))
        hop = math.prod(self.encoder.strides)
        if self.decoder.hop_length != hop:
            raise ValueError(f"decoder hop_length {self.decoder.hop_length} != encoder hop {hop}")
        if self.quantizer.dim != self.encoder.dim or self.decoder.input_dim != self.encoder.dim:
            raise ValueError(
                f"latent dims disagree: encoder {self.encoder.dim}, quantizer {self.quantizer.dim}, "
                f"decoder {self.decoder.input_dim}"
            )


@register_family("codec", CodecConfig)
def build_codec(cfg: CodecConfig, norm: bool = False, name: str | None = None, inference: bool = False) -> Tokenizer:
    """`norm=True` adds weight norm to the encoder's convs (training); inference checkpoints hold folded weights."""
    return Tokenizer(
        SEANetEncoder(cfg.encoder, norm=norm), build_quantizer(cfg.quantizer, inference), VocosDecoder(cfg.decoder),
        sample_rate=cfg.sample_rate, family="codec", config=cfg, name=name,
    )
