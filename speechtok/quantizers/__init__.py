"""Quantizers: continuous latents <-> integer codes. `QUANTIZERS` maps the `kind` a codec's quantizer section
names (none means RVQ, as in every earlier config.json) to its config class and builder; adding a quantizer adds its
module and a line here."""

from __future__ import annotations

from collections.abc import Callable

from .base import QuantizeOut, Quantizer
from .fsq import FSQ, FSQConfig
from .kmeans import KMeans, KMeansConfig
from .rvq import RVQ, RVQConfig

# kind -> (config class, build(cfg, inference)); `inference=True` may build a lighter module (RVQ's, without
# vector-quantize-pytorch); FSQ has no lighter form
QUANTIZERS: dict[str, tuple[type, Callable[..., Quantizer]]] = {
    "rvq": (RVQConfig, lambda cfg, inference: RVQ(cfg, inference=inference)),
    "fsq": (FSQConfig, lambda cfg, inference: FSQ(cfg)),
}


def quantizer_config(data: dict) -> RVQConfig | FSQConfig:
    """A codec's quantizer section (a dict from config.json or a recipe) -> its config; `kind` picks the class."""
    from ..config import from_dict

    kind = data.get("kind", "rvq")
    if kind not in QUANTIZERS:
        raise ValueError(f"unknown quantizer kind {kind!r}; known: {', '.join(QUANTIZERS)}")
    return from_dict(QUANTIZERS[kind][0], {k: v for k, v in data.items() if k != "kind" or kind != "rvq"})


def build_quantizer(cfg: RVQConfig | FSQConfig, inference: bool = False) -> Quantizer:
    build = next(build for config_cls, build in QUANTIZERS.values() if isinstance(cfg, config_cls))
    return build(cfg, inference)


__all__ = ["QUANTIZERS", "Quantizer", "QuantizeOut", "RVQ", "RVQConfig", "FSQ", "FSQConfig", "KMeans", "KMeansConfig",
           "build_quantizer", "quantizer_config"]
