"""Quantizers: continuous latents <-> integer codes. `QUANTIZERS` (registry.py) maps the `kind` a codec's
quantizer section names to its config class and builder; every module of this package is imported here, so each
quantizer registers itself."""

from __future__ import annotations

import pkgutil
from importlib import import_module

from .base import QuantizeOut, Quantizer
from .fsq import FSQ, FSQConfig
from .kmeans import KMeans, KMeansConfig
from .registry import QUANTIZERS, build_quantizer, quantizer_config, register_quantizer
from .rvq import RVQ, RVQConfig

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = ["QUANTIZERS", "Quantizer", "QuantizeOut", "RVQ", "RVQConfig", "FSQ", "FSQConfig", "KMeans", "KMeansConfig",
           "build_quantizer", "quantizer_config", "register_quantizer"]
