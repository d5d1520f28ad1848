"""Tokenizer families: each is a config dataclass and a builder that assembles encoder, quantizer and decoder.

`config.json` names its family; loading looks the family up here (a registry, not an if-chain). A builder's
`inference=True` (how a checkpoint is loaded) may build lighter modules that cannot train, with the same state
(the RVQ without vector-quantize-pytorch: quantizers/rvq.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .codecs.hubert import HubertConfig, HubertEncoder
from .codecs.seanet import SEANetConfig, SEANetEncoder
from .codecs.speechtokenizer import SemanticProjection, SpeechTokenizerConfig, SpeechTokenizerEncoder
from .config import from_dict
from .quantizers.base import Quantizer
from .quantizers.fsq import FSQ, FSQConfig
from .quantizers.kmeans import KMeans, KMeansConfig
from .quantizers.rvq import RVQ, RVQConfig
from .tokenizer import Tokenizer
from .units import UnitTokenizer
from .vocoders.gan import VocosConfig, VocosDecoder
from .vocoders.flow import FlowConfig, FlowDecoder
from .vocoders.seanet import SEANetDecoder, SEANetDecoderConfig


@dataclass(frozen=True)
class Family:
    config_cls: type
    build: Callable[..., Tokenizer]  # build(cfg, norm=False, name=None, inference=False) -> Tokenizer


FAMILIES: dict[str, Family] = {}


def register_family(name: str, config_cls: type):
    def deco(build):
        FAMILIES[name] = Family(config_cls, build)
        return build

    return deco


# A codec's quantizer section -> its quantizer: RVQ (no `kind` key, as in every earlier config.json) or `kind: fsq`.
# Builders take (cfg, inference); FSQ has no lighter inference form.
CODEC_QUANTIZERS: dict[str, tuple[type, Callable[..., Quantizer]]] = {
    "rvq": (RVQConfig, lambda cfg, inference: RVQ(cfg, inference=inference)),
    "fsq": (FSQConfig, lambda cfg, inference: FSQ(cfg)),
}


def build_quantizer(cfg: RVQConfig | FSQConfig, inference: bool = False) -> Quantizer:
    build = next(build for config_cls, build in CODEC_QUANTIZERS.values() if isinstance(cfg, config_cls))
    return build(cfg, inference)


@dataclass(frozen=True)
class CodecConfig:
    """SoundStream/EnCodec-style codec: SEANet encoder, RVQ (or FSQ), Vocos-style GAN decoder."""

    sample_rate: int = 16000
    encoder: SEANetConfig = field(default_factory=SEANetConfig)
    quantizer: RVQConfig | FSQConfig = field(default_factory=RVQConfig)
    decoder: VocosConfig = field(default_factory=VocosConfig)

    def __post_init__(self):
        if isinstance(self.quantizer, dict):  # from config.json or a recipe: `kind` picks the quantizer
            kind = self.quantizer.get("kind", "rvq")
            if kind not in CODEC_QUANTIZERS:
                raise ValueError(f"unknown quantizer kind {kind!r}; known: {', '.join(CODEC_QUANTIZERS)}")
            data = {k: v for k, v in self.quantizer.items() if k != "kind" or kind != "rvq"}  # RVQConfig has no kind
            object.__setattr__(self, "quantizer", from_dict(CODEC_QUANTIZERS[kind][0], data))
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


@dataclass(frozen=True)
class HubertUnitsConfig:
    """HuBERT units: the features of one HuBERT layer, k-means (one codebook), and an optional unit vocoder
    (the GAN decoder fed with the centroid of each unit)."""

    sample_rate: int = 16000
    hubert: HubertConfig = field(default_factory=HubertConfig)
    layer: int = 4  # hidden state index: 0 = transformer input, i = output of layer i
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    vocoder: VocosConfig | None = None

    def __post_init__(self):
        if isinstance(self.vocoder, dict):  # from config.json: an optional nested config
            object.__setattr__(self, "vocoder", from_dict(VocosConfig, self.vocoder))
        if not 0 <= self.layer <= self.hubert.num_hidden_layers:
            raise ValueError(f"layer {self.layer} is out of range 0..{self.hubert.num_hidden_layers}")
        if self.kmeans.dim != self.hubert.hidden_size:
            raise ValueError(f"k-means dim {self.kmeans.dim} != HuBERT hidden_size {self.hubert.hidden_size}")
        if self.vocoder is not None and (self.vocoder.input_dim != self.hubert.hidden_size
                                         or self.vocoder.hop_length != self.hubert.hop_length):
            raise ValueError(f"vocoder input_dim {self.vocoder.input_dim} / hop {self.vocoder.hop_length} do not fit "
                             f"HuBERT ({self.hubert.hidden_size} / {self.hubert.hop_length})")


@register_family("hubert-units", HubertUnitsConfig)
def build_hubert_units(cfg: HubertUnitsConfig, norm: bool = False, name: str | None = None,
                       inference: bool = False) -> UnitTokenizer:
    decoder = None if cfg.vocoder is None else VocosDecoder(cfg.vocoder)
    return UnitTokenizer(HubertEncoder(cfg.hubert, cfg.layer, cfg.sample_rate), KMeans(cfg.kmeans), decoder,
                         sample_rate=cfg.sample_rate, family="hubert-units", config=cfg, name=name)


@register_family("speechtokenizer", SpeechTokenizerConfig)
def build_speechtokenizer(cfg: SpeechTokenizerConfig, norm: bool = False, name: str | None = None,
                          inference: bool = False) -> Tokenizer:
    """The SpeechTokenizer layout: SEANet + BiLSTM encoder, RVQ searched in the latent space itself (EnCodec's),
    SEANet decoder, and the projection of RVQ layer 1 towards the teacher."""
    from .hybrid import HybridTokenizer

    quantizer = RVQ(RVQConfig(dim=cfg.dimension, num_codebooks=cfg.n_q, codebook_size=cfg.codebook_size,
                              codebook_dim=None, quantizer_dropout=False), inference=inference)
    decoder = SEANetDecoder(SEANetDecoderConfig(
        dimension=cfg.dimension, n_filters=cfg.n_filters, strides=cfg.strides, lstm_layers=cfg.lstm_layers,
        n_residual_layers=cfg.n_residual_layers, residual_kernel_size=cfg.residual_kernel_size,
        dilation_base=cfg.dilation_base,
        lstm_context_frames=round(cfg.lstm_context_s * cfg.sample_rate / cfg.hop_length),
    ), norm=norm)
    return HybridTokenizer(SpeechTokenizerEncoder(cfg, norm=norm), quantizer, decoder, semantic=SemanticProjection(cfg),
                           sample_rate=cfg.sample_rate, family="speechtokenizer", config=cfg, name=name)


@dataclass(frozen=True)
class FlowDecodedConfig:
    """Another tokenizer's encoder and quantizer, unchanged (its codes decode here, and the other way round), with
    the flow-matching decoder in place of its own: `speechtok train flow` trains it on the frozen tokenizer."""

    base_family: str = "codec"  # the family of the tokenizer whose codes are decoded
    base: dict = field(default_factory=dict)  # that tokenizer's config (its family's config as a dict)
    decoder: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self):
        if self.base_family not in FAMILIES or self.base_family == "flow-decoded":
            raise ValueError(f"unknown base family {self.base_family!r}; known: "
                             f"{', '.join(sorted(set(FAMILIES) - {'flow-decoded'}))}")


@register_family("flow-decoded", FlowDecodedConfig)
def build_flow_decoded(cfg: FlowDecodedConfig, norm: bool = False, name: str | None = None,
                       inference: bool = False) -> Tokenizer:
    family = FAMILIES[cfg.base_family]
    base = family.build(from_dict(family.config_cls, cfg.base), norm=norm, inference=inference)
    if cfg.decoder.hop_length != base.hop_length:
        raise ValueError(f"flow decoder hop_length {cfg.decoder.hop_length} != the base tokenizer's {base.hop_length}")
    tok = type(base)(base.encoder, base.quantizer, FlowDecoder(cfg.decoder), sample_rate=base.sample_rate,
                     family="flow-decoded", config=cfg, name=name)
    tok.codes_hash = base.codes_hash
    return tok
