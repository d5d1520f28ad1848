"""The contract between the one training loop and each family's task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ...tokenizer import Tokenizer

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from ..data import DataConfig
    from ..validation import Validation, ValidationConfig

# update(group, loss): backward `loss`, then (on a step's last micro-batch) average the gradients over the ranks,
# clip them and step the optimizer of `group`. Gradients are zeroed before a step's first backward.
Update = Callable[[str, Tensor], None]
# A training batch: audio [B, 1, T], or a tuple that starts with it (a task's own dataset adds what goes with it)
Batch = Tensor | tuple[Tensor, ...]


TASKS: dict[str, type[Task]] = {}  # task name -> class; the tasks package imports every module, so all register


class Task(ABC):
    """A task owns its modules and computes losses; the Trainer owns optimizers, schedules, devices and I/O."""

    # The optimizer group whose weights `export()` uses: the trainer keeps its EMA and swaps it in for export.
    export_group: str = "generator"
    # The trainer's generator for the task's own random draws (set by the Trainer; checkpointed with the run)
    rng: torch.Generator | None = None
    # The recipe's `task:` that picks it; a subclass with a name registers itself in TASKS (none: a base class)
    name: str | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            TASKS[cls.name] = cls

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Optimizer groups: each named module gets its own AdamW, schedule and gradient clipping."""

    @abstractmethod
    def step(self, batch: Batch, step: int, update: Update) -> dict[str, float]:
        """One training step on `batch` [B, 1, T]; calls `update` once per group it trains; returns logs."""

    def dataset(self, data: DataConfig, seed: int) -> Dataset | None:
        """The training dataset, for a task whose batches carry more than audio (a tuple batch); None: the
        recipe's `data` as crops of audio."""
        return None

    @abstractmethod
    def export(self) -> Tokenizer:
        """The inference tokenizer (eval mode, on CPU) built from the current weights."""

    def validate(self, subset: list[tuple[str, Tensor]], cfg: ValidationConfig, device: torch.device) -> Validation:
        """Metrics on the fixed dev subset (name, audio [T]) and audio to listen to. By default: reconstruction
        through the exported tokenizer; a task that does not reconstruct audio overrides this."""
        from ..validation import reconstruction

        return reconstruction(self.export(), subset, cfg.metrics, cfg.samples, device)

    def init_from(self, checkpoint_dir: Path) -> None:
        """Start from the weights of an inference checkpoint (tasks that can, override this)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from an inference checkpoint")

    def frozen(self) -> dict[str, nn.Module]:
        """Modules the task uses but does not train (a teacher, a target model, a loss with buffers): they move
        with the task and stay in eval mode."""
        return {}

    def to(self, device) -> Task:
        for module in [*self.modules().values(), *self.frozen().values()]:
            module.to(device)
        return self

    def train(self) -> None:
        for module in self.modules().values():
            module.train()
        for module in self.frozen().values():
            module.eval()
