"""Dataclass configs <-> JSON: nested frozen dataclasses round-trip `config.json`, and hash to an identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _hashed(value: Any) -> Any:
    """`to_dict`'s structure, less the `hash_if_set` fields left at their default."""
    if dataclasses.is_dataclass(value):
        return {f.name: _hashed(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.metadata.get("hash_if_set") and getattr(value, f.name) == f.default)}
    if isinstance(value, (list, tuple)):
        return [_hashed(v) for v in value]
    if isinstance(value, dict):
        return {k: _hashed(v) for k, v in value.items()}
    return value


def from_dict(cls: type[T], data: dict) -> T:
    """Build `cls` from a dict, recursing into nested dataclass fields. Unknown keys are an error."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # T is a dataclass type
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        _check_scalar(cls, key, hint, value)
        kwargs[key] = value
    return cls(**kwargs)


_SCALARS = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}


def _check_scalar(cls: type, key: str, hint: Any, value: Any) -> None:
    """A number, flag or name of the wrong type (`"8"` for 8) would pass into the model and fail far away."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return
    allowed = [t for o in options for t in _SCALARS.get(o, ())]
    if len(allowed) != sum(len(_SCALARS.get(o, ())) for o in options) or not allowed:
        return  # not only scalars: a tuple, a dict, a nested config: their own checks
    if not isinstance(value, tuple(allowed)) or (isinstance(value, bool) and bool not in options):
        names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
        raise ValueError(f"{cls.__name__}.{key} must be {names}, got {value!r}")


def config_hash(cfg: Any) -> str:
    """12 hex digits of sha256 over the canonical JSON of the config: same architecture, same hash. A field added
    after checkpoints were made (metadata `hash_if_set`) counts only when it differs from its default, so that
    those checkpoints keep their identity."""
    text = json.dumps(_hashed(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
