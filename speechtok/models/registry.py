"""The family registry: a family's name (as `config.json` gives it) -> its config class and builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..tokenizer import Tokenizer


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
