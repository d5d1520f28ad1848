"""Quantizer kinds: the `kind` a codec's quantizer section names (none means RVQ, as in every earlier
config.json) -> its config class and builder. Each quantizer module registers itself with `register_quantizer`,
and the package imports every module, so adding a quantizer adds its module (and its test) and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import Quantizer


@dataclass(frozen=True)
class QuantizerKind:
    config_cls: type
    build: Callable[[Any, bool], Quantizer]  # build(cfg, inference): `inference=True` may build a lighter module


QUANTIZERS: dict[str, QuantizerKind] = {}


def register_quantizer(kind: str, config_cls: type) -> Callable:
    def deco(build: Callable[[Any, bool], Quantizer]) -> Callable[[Any, bool], Quantizer]:
        QUANTIZERS[kind] = QuantizerKind(config_cls, build)
        return build

    return deco


def quantizer_config(data: dict) -> Any:
    """A codec's quantizer section (a dict from config.json or a recipe) -> its config; `kind` picks the class."""
    from ..config import from_dict

    kind = data.get("kind", "rvq")
    if kind not in QUANTIZERS:
        raise ValueError(f"unknown quantizer kind {kind!r}; known: {', '.join(QUANTIZERS)}")
    return from_dict(QUANTIZERS[kind].config_cls, {k: v for k, v in data.items() if k != "kind" or kind != "rvq"})


def build_quantizer(cfg: Any, inference: bool = False) -> Quantizer:
    found = [q.build for q in QUANTIZERS.values() if isinstance(cfg, q.config_cls)]
    if not found:
        raise ValueError(f"no quantizer is registered for {type(cfg).__name__}")
    return found[0](cfg, inference)
