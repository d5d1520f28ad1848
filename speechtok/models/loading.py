"""Loading a checkpoint directory as a tokenizer: `config.json` names its family, whose config class and builder
the registry gives; the weights are checked against what that config builds before they are loaded."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import torch

from ..checkpoint import CONFIG_NAME, check_layout, read_config, read_weights, tensor_headers, weight_files
from ..config import config_hash, from_dict
from ..errors import CheckpointError
from ..tokenizer import Tokenizer
from .registry import FAMILIES


def build_from_config(meta: dict, path: Path, norm: bool = False, inference: bool = False) -> Tokenizer:
    family, cfg = parse_config(meta, path)
    return family.build(cfg, norm=norm, name=meta.get("name"), inference=inference)


def parse_config(meta: dict, path: Path):
    """(family, its config object) of a checkpoint's config.json, each part checked; builds no module."""
    family = FAMILIES.get(meta.get("family"))
    if family is None:
        raise CheckpointError(f"{path}: unknown family {meta.get('family')!r}; known: {', '.join(sorted(FAMILIES))}")
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path}: no 'config' object (the architecture) in it")
    missing = [name for name in _sections(family.config_cls) if name not in meta["config"]]
    if missing:  # a checkpoint's config is whole: defaults in place of a lost section would be another model
        raise CheckpointError(f"{path}: config has no {', '.join(repr(m) for m in missing)} section")
    try:
        cfg = from_dict(family.config_cls, meta["config"])
    except KeyError as e:
        raise CheckpointError(f"{path}: invalid config (missing key {e})") from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config ({e})") from None
    return family, cfg


def _sections(cls: type) -> list[str]:
    """The fields of a config class that are configs themselves (encoder, quantizer, decoder, ...)."""
    hints = typing.get_type_hints(cls)

    def is_config(hint) -> bool:
        return dataclasses.is_dataclass(hint) or any(dataclasses.is_dataclass(a) for a in typing.get_args(hint))

    return [f.name for f in dataclasses.fields(cls) if is_config(hints[f.name])]


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device | None = None) -> Tokenizer:
    directory = Path(directory)
    meta = read_config(directory)
    headers = tensor_headers(weight_files(directory))
    family, cfg = parse_config(meta, directory / CONFIG_NAME)
    _check_config_hash(meta, config_hash(cfg), directory / CONFIG_NAME)

    def build() -> Tokenizer:  # lean modules (inference=True): nothing trains a load
        return family.build(cfg, name=meta.get("name"), inference=True)

    if meta.get("config_hash") is None:  # a hand-written config: its sizes are checked before anything is allocated
        _check_layout_on_meta_device(build, headers, directory)
    tok = build()
    check_layout(tok, headers, directory)
    expected = tok.state_dict()
    state = {k: v.to(expected[k].dtype) if k in expected and v.is_floating_point() else v
             for k, v in read_weights(directory).items()}
    try:
        tok.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{directory}: weights do not match {CONFIG_NAME} ({first})") from None
    tok.source = str(directory.resolve())
    return tok.to(device or "cpu").eval()


def _check_config_hash(meta: dict, computed: str, path: Path) -> None:
    """An edited config.json (its sample rate, a dim) would run the weights as another model: the stored hash
    says which config they were trained with."""
    stored = meta.get("config_hash")
    if stored is not None and stored != computed:
        raise CheckpointError(f"{path}: the config was edited: it hashes to {computed}, but the weights were "
                              f"saved with config {stored}; restore the original config.json")


def _check_layout_on_meta_device(build, headers: dict, directory: Path) -> None:
    """`check_layout` on modules built (`build()`) on the meta device (no memory: a codebook of 2^40 is refused, not
    allocated). Slower to build (torch imports its compiler for some ops there), so only for configs that carry
    no hash of their own."""
    try:
        with torch.device("meta"):
            skeleton = build()
    except (RuntimeError, NotImplementedError):  # a module that reads values while it builds (FSQ's levels)
        return
    check_layout(skeleton, headers, directory)


