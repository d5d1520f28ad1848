"""The one training loop. It drives a Task (codec GAN today; HuBERT, distillation and flow tasks plug in the
same way): AdamW per optimizer group, warm-up + decay schedule, gradient clipping, a run directory with
periodic checkpoints and resume, a CSV log (TensorBoard when installed), and a progress bar with ETA.

    run_dir/recipe.yaml            the resolved recipe (overrides applied)
    run_dir/log.csv                step, seconds, lr per group, and every loss the task logs
    run_dir/checkpoints/step-N.pt  modules, optimizers, schedulers, step, RNG states
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from torch import Tensor

from ..fileio import atomic_path, write_text
from . import checkpoints
from .data import batches
from .recipe import OptimConfig, Recipe, recipe_from_dict
from .schedule import lr_factor
from .tasks import TASKS, Task

log = logging.getLogger("speechtok.train")


def build_task(recipe: Recipe) -> Task:
    if recipe.task not in TASKS:
        raise ValueError(f"unknown task {recipe.task!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[recipe.task](recipe.model, recipe.task_config)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    def __init__(self, recipe: Recipe, run_dir: str | Path):
        self.recipe, self.cfg = recipe, recipe.train
        self.run_dir = Path(run_dir)
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        torch.manual_seed(self.cfg.seed)
        self.device = pick_device(self.cfg.device)
        self.task = build_task(recipe).to(self.device)
        self.optimizers = {name: self._optimizer(module, self._optim_cfg(name))
                           for name, module in self.task.modules().items()}
        self.step = 0

    def _optim_cfg(self, group: str) -> OptimConfig:
        return self.recipe.optim.get(group, OptimConfig())

    @staticmethod
    def _optimizer(module: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
        params = [p for p in module.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    def _set_lr(self) -> dict[str, float]:
        """The schedule is a pure function of the step, so resuming needs no scheduler state."""
        c = self.cfg
        factor = lr_factor(self.step, c.steps, c.warmup_steps, c.schedule, c.min_lr_ratio, c.lr_gamma)
        lrs = {}
        for name, opt in self.optimizers.items():
            lrs[f"lr/{name}"] = self._optim_cfg(name).lr * factor
            for group in opt.param_groups:
                group["lr"] = lrs[f"lr/{name}"]
        return lrs

    # -- the loop ---------------------------------------------------------------------------------------

    def fit(self, until: int | None = None) -> Path:
        """Train to `train.steps` (or stop at step `until`), resuming from the run directory's latest checkpoint.
        Returns the run directory."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.run_dir / "recipe.yaml", yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        if not self.resume() and self.cfg.init_from:
            self.task.init_from(Path(self.cfg.init_from))
            log.info("%s: generator weights from %s", self.run_dir, self.cfg.init_from)
        if self.step >= self.cfg.steps:
            log.warning("%s: already at step %d of %d", self.run_dir, self.step, self.cfg.steps)
            return self.run_dir
        self.task.train()
        stream = batches(self.recipe.data, self.cfg.batch_size, self.cfg.seed, start_step=self.step)
        sums: dict[str, float] = defaultdict(float)
        count, start = 0, time.time()
        bar = _progress(self.cfg.steps, self.step)
        writer = _tensorboard(self.run_dir) if self.cfg.tensorboard else None
        last = min(self.cfg.steps, until if until is not None else self.cfg.steps)
        deadline = start + 60 * self.cfg.max_minutes if self.cfg.max_minutes > 0 else math.inf
        while self.step < last:
            batch = next(stream).to(self.device, non_blocking=True)
            lrs = self._set_lr()
            for key, value in self.task.step(batch, self.step, self._update).items():
                sums[key] += value
            count += 1
            self.step += 1
            bar.update(1)
            if time.time() > deadline:  # a time-boxed job: log, checkpoint and stop here
                last = self.step
            if self.step % self.cfg.log_every == 0 or self.step == last:
                means = {k: v / count for k, v in sums.items()}
                self._log_row({**lrs, **means}, time.time() - start, writer)
                bar.set_postfix({k: f"{v:.3g}" for k, v in means.items() if k.endswith(("mel", "generator"))})
                sums.clear()
                count = 0
            if self.step % self.cfg.checkpoint_every == 0 or self.step == last:
                self.save()
        bar.close()
        return self.run_dir

    def _update(self, group: str, loss: Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: {group} loss is {float(loss)}")
        opt = self.optimizers[group]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self._optim_cfg(group).grad_clip
        if math.isfinite(clip):
            torch.nn.utils.clip_grad_norm_(self.task.modules()[group].parameters(), clip)
        opt.step()

    # -- state ------------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "modules": {k: m.state_dict() for k, m in self.task.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def save(self) -> Path:
        path = checkpoints.save(self.run_dir, self.step, self.state(), self.cfg.keep_checkpoints)
        log.info("checkpoint %s", path)
        return path

    def resume(self, path: Path | None = None) -> bool:
        path = path or checkpoints.latest(self.run_dir)
        if path is None:
            return False
        state = checkpoints.load(path)
        for name, module in self.task.modules().items():
            module.load_state_dict(state["modules"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        checkpoints.set_rng_state(state["rng"])
        self.step = int(state["step"])
        log.info("resumed %s at step %d", self.run_dir, self.step)
        return True

    def _log_row(self, values: dict[str, float], elapsed: float, writer) -> None:
        append_csv(self.run_dir / "log.csv", {"step": self.step, "seconds": round(elapsed, 2), **values})
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(key, value, self.step)


def append_csv(path: Path, row: dict) -> None:
    """Append a row; when it brings new columns (the adversarial losses join later), rewrite with the union."""
    if not path.is_file():
        return _write_csv(path, list(row), [row])
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = None if set(row) <= set(fields) else list(reader)
    if rows is not None:
        return _write_csv(path, fields + [k for k in row if k not in fields], rows + [row])
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fields).writerow(row)


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def load_run(run_dir: str | Path) -> Trainer:
    """A trainer rebuilt from a run directory's recipe and latest checkpoint (for export)."""
    run_dir = Path(run_dir)
    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no recipe.yaml)")
    recipe = recipe_from_dict(yaml.safe_load(recipe_path.read_text()), source=recipe_path)
    trainer = Trainer(recipe, run_dir)
    if not trainer.resume():
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    return trainer


def _progress(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", file=sys.stderr, dynamic_ncols=True, smoothing=0.05)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed; logging to log.csv only")
        return None
    return SummaryWriter(str(run_dir / "tb"))
