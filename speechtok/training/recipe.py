"""Recipes: one YAML file per family (`speechtok/recipes/<name>.yaml`), `key.sub=value` overrides on top.

A recipe has these sections: `task` (a name from TASKS), `model` (the family's config), `task_config` (the task's
own options: loss weights, ...), `data` (DataConfig), `train` (TrainConfig), `optim` (one OptimConfig per
optimizer group the task declares, e.g. `generator` and `discriminator`) and `validation` (ValidationConfig).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import from_dict, to_dict
from .data import DataConfig
from .validation import ValidationConfig

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    betas: tuple[float, float] = (0.8, 0.99)  # HiFi-GAN / DAC: low beta1 steadies GAN training
    weight_decay: float = 0.0
    grad_clip: float = 1000.0  # max global grad norm; inf disables


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine (to min_lr_ratio), exponential (lr_gamma per step), constant
    min_lr_ratio: float = 0.1
    lr_gamma: float = 0.999996
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default
    tensorboard: bool = False  # when the tensorboard package is installed
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much training time; 0: no limit
    init_from: str | None = None  # an inference checkpoint whose weights start a new run (a chain of short jobs)
    precision: str = "auto"  # auto (bf16 on a GPU with it, else fp32), fp32, bf16, fp16 (autocast + loss scaling)
    grad_accum: int = 1  # split each batch into this many micro-batches, one optimizer step per batch
    ema_decay: float = 0.0  # EMA of the exported group's weights, used for export and validation; 0: none
    ema_start: int = 0  # the EMA copies the weights until this step, then averages
    check_sync_every: int = 1000  # under torchrun: verify every N steps that all ranks hold the same weights

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.grad_accum <= 0 or self.batch_size % self.grad_accum:
            raise ValueError(f"train.batch_size {self.batch_size} must be a positive multiple of train.grad_accum "
                             f"{self.grad_accum}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class Recipe:
    task: str
    model: dict
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: dict[str, OptimConfig] = field(default_factory=dict)
    task_config: dict = field(default_factory=dict)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def to_dict(self) -> dict:
        return {"task": self.task, "model": self.model, "task_config": self.task_config,
                "data": to_dict(self.data), "train": to_dict(self.train),
                "optim": {k: to_dict(v) for k, v in self.optim.items()}, "validation": to_dict(self.validation)}


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """A path to a YAML file, or the name of a bundled recipe (`codec` -> recipes/codec.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"{name_or_path}: no such recipe file or bundled recipe (bundled: {names})")


def load_recipe(name_or_path: str | os.PathLike, overrides: list[str] = ()) -> Recipe:
    path = find_recipe(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a mapping with task, model, data, train, optim")
    return recipe_from_dict(apply_overrides(raw, overrides), source=path)


def recipe_from_dict(raw: dict, source: object = "recipe") -> Recipe:
    unknown = sorted(set(raw) - {"task", "model", "data", "train", "optim", "task_config", "validation"})
    if unknown or "task" not in raw or "data" not in raw:
        raise ValueError(f"{source}: needs task and data sections"
                         + (f"; unknown sections {unknown}" if unknown else ""))
    try:
        return Recipe(
            task=raw["task"], model=raw.get("model") or {}, task_config=raw.get("task_config") or {},
            data=from_dict(DataConfig, raw["data"]), train=from_dict(TrainConfig, raw.get("train") or {}),
            optim={k: from_dict(OptimConfig, v or {}) for k, v in (raw.get("optim") or {}).items()},
            validation=from_dict(ValidationConfig, raw.get("validation") or {}),
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`train.steps=100 model.encoder.channels=16`: each value parsed as YAML (numbers, lists, booleans)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        node: Any = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[leaf] = parse_override_value(value)
    return out


# YAML 1.1 reads `2e-4` (no dot) as a string; on the command line that is always meant as a number.
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?\d+[eE][-+]?\d+$")


def parse_override_value(text: str) -> Any:
    value = yaml.safe_load(text)
    if isinstance(value, str) and _FLOAT_WITHOUT_DOT.match(value):
        return float(value)
    return value


# What a resumed run may change: how long and how it runs, what it logs and validates; not what it trains on or
# how (the model, the task, the data stream, the optimizers, the batch)
RESUMABLE = ("train.steps", "train.max_minutes", "train.log_every", "train.checkpoint_every",
             "train.keep_checkpoints", "train.device", "train.threads", "train.tensorboard", "train.check_sync_every",
             "train.init_from", "data.num_workers", "data.cache", "validation.")


def changes_for_resume(started: dict, now: dict) -> list[str]:
    """Dotted keys whose values differ between the recipe a run started with and the one resuming it, less those
    a resume may change (RESUMABLE)."""
    a, b = _flatten(started), _flatten(now)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in changed if not k.startswith(RESUMABLE)]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): list(tree) if isinstance(tree, tuple) else tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out
