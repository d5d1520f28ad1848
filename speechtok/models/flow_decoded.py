"""The flow-decoded family: another tokenizer's encoder and quantizer with the flow-matching decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import from_dict
from ..tokenizer import Tokenizer
from ..vocoders.flow import FlowConfig, FlowDecoder
from .registry import FAMILIES, register_family


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
