"""Tokenizer families: each is a config dataclass and a builder that assembles encoder, quantizer and decoder into
a `Tokenizer`, one module a family (codec, hubert_units, speechtokenizer, flow_decoded), registered by
`register_family` in its own module; every module of this package is imported here, so adding a family adds its
module and nothing in this file.

`config.json` names its family; loading looks the family up in `FAMILIES` (a registry, not an if-chain). A
builder's `inference=True` (how a checkpoint is loaded) may build lighter modules that cannot train, with the same
state (the RVQ without vector-quantize-pytorch: quantizers/rvq.py).
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from .codec import CodecConfig, build_codec
from .flow_decoded import FlowDecodedConfig, build_flow_decoded
from .hubert_units import HubertUnitsConfig, build_hubert_units, hubert_features, hubert_units_from
from .registry import FAMILIES, Family, register_family  # noqa: I001 - the registry before the families
from .speechtokenizer import build_speechtokenizer, semantic_features

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = ["FAMILIES", "Family", "register_family", "CodecConfig", "build_codec", "HubertUnitsConfig",
           "build_hubert_units", "hubert_features", "hubert_units_from", "build_speechtokenizer", "semantic_features",
           "FlowDecodedConfig", "build_flow_decoded"]
