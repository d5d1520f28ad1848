"""The one training loop. It drives a Task (codec GAN today; HuBERT, distillation and flow tasks plug in the
same way): AdamW per optimizer group, warm-up + decay schedule, gradient clipping and accumulation, mixed
precision, an EMA of the exported weights, validation on a fixed dev subset, a run directory with periodic
checkpoints and exact resume, a CSV log (TensorBoard when installed), and a progress bar with steps/s and ETA.

One process or many: under `torchrun` each rank trains on its own share of every epoch, gradients are averaged
over the ranks before each optimizer step (see distributed.py), and rank 0 alone logs and writes checkpoints.
`batch_size` is per rank and per optimizer step.

    run_dir/recipe.yaml            the resolved recipe (overrides applied)
    run_dir/log.csv                step, seconds, lr per group, and every loss the task logs (mean over ranks)
    run_dir/validation.csv         step, training seconds of this job (validation excluded) and the dev-subset
                                   metrics (val/mel, val/pesq_wb, ...)
    run_dir/samples/step-N/        decoded dev utterances (samples/reference/ holds the originals)
    run_dir/checkpoints/step-N.pt  modules, optimizers, loss scaler, EMA, step, RNG states
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from torch import Tensor

from ..fileio import atomic_path, write_text
from ..layers import autocast_off
from . import checkpoints, distributed
from .data import batches
from .ema import EMA
from .precision import Precision
from .recipe import OptimConfig, Recipe, changes_for_resume, recipe_from_dict
from .schedule import lr_factor
from .tasks import TASKS, Batch, Task
from .validation import dev_subset, save_samples

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
        self.own_rng = checkpoints.OwnRNG(self.cfg.seed)  # seeded; the process's own streams are left alone
        with self.own_rng.active():
            self._build()

    def _build(self) -> None:
        recipe = self.recipe
        device = pick_device(self.cfg.device)
        self.dist = distributed.setup(device)  # before the task: the RVQ syncs its codebooks when a group exists
        self.device = distributed.local_device(device, self.dist)
        self.task = build_task(recipe).to(self.device)
        # the task's own random draws (the flow task's noise and times), checkpointed with the run
        self.task.rng = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        modules = self.task.modules()
        if self.task.export_group not in modules:
            raise ValueError(f"task {recipe.task}: export group {self.task.export_group!r} is not one of "
                             f"{list(modules)}")
        if self.dist.enabled:
            for module in modules.values():
                distributed.broadcast_state(module)
        self.optimizers = {name: self._optimizer(module, self._optim_cfg(name)) for name, module in modules.items()}
        self.precision = Precision(self.cfg.precision, self.device)
        self.ema = (EMA(modules[self.task.export_group], self.cfg.ema_decay, self.cfg.ema_start)
                    if self.cfg.ema_decay > 0 else None)
        self.step = 0
        self.stopped_by: str | None = None  # the signal that stopped fit, if one did
        self.seconds_before = 0.0  # wall seconds of this run in earlier jobs (log.csv's seconds go on from them)
        self.job_start = time.time()

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

    @checkpoints.with_own_rng
    def fit(self, until: int | None = None) -> Path:
        """Train to `train.steps` (or stop at step `until`), resuming from the run directory's latest checkpoint.
        Returns the run directory."""
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._check_resume_recipe()
            checkpoints.remove_stale_temps(self.run_dir)
            write_text(self.run_dir / "recipe.yaml", yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        resumed = self.resume()
        if resumed and main:  # rows past the checkpoint's step: this job logs those steps again
            for name in ("log.csv", "validation.csv"):
                drop_rows_after(self.run_dir / name, self.step)
        if not resumed and self.cfg.init_from:
            self.task.init_from(Path(self.cfg.init_from))
            if self.ema is not None:
                self.ema = EMA(self.task.modules()[self.task.export_group], self.cfg.ema_decay, self.cfg.ema_start)
            log.info("%s: generator weights from %s", self.run_dir, self.cfg.init_from)
        if self.step >= self.cfg.steps:
            log.warning("%s: already at step %d of %d", self.run_dir, self.step, self.cfg.steps)
            return self.run_dir
        self.task.train()
        stream = batches(self.recipe.data, self.cfg.batch_size, self.cfg.seed, start_step=self.step,
                         rank=self.dist.rank, world_size=self.dist.world_size,
                         dataset=self.task.dataset(self.recipe.data, self.cfg.seed))
        validator = self._validator() if main else None
        start = self.job_start = time.time()
        bar = _progress(self.cfg.steps, self.step, disable=not main)
        writer = _tensorboard(self.run_dir) if self.cfg.tensorboard and main else None
        last = min(self.cfg.steps, until if until is not None else self.cfg.steps)
        deadline = start + 60 * self.cfg.max_minutes if self.cfg.max_minutes > 0 else math.inf
        with self._stop_on_signals():
            self._loop(stream, last, deadline, start, bar, writer, validator, main)
        bar.close()
        if self.stopped_by is not None:
            log.warning("%s: stopped by %s at step %d, checkpoint written; run the same command to resume",
                        self.run_dir, self.stopped_by, self.step)
        return self.run_dir

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """Ctrl-C or SIGTERM (a scheduler's end of job) finish the step, checkpoint and stop. One process only:
        ranks under torchrun would stop at different steps."""
        self.stopped_by = None
        if self.dist.enabled or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum, frame):
            self.stopped_by = signal.Signals(signum).name

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self, stream, last: int, deadline: float, start: float, bar, writer, validator, main: bool) -> None:
        sums: dict[str, float] = defaultdict(float)
        codebook = CodebookHealth()  # the quantizer's per-step stats since the last validation
        count, validating = 0, 0.0  # validating: seconds spent validating, not training
        while self.step < last:
            batch = _to_device(next(stream), self.device)
            lrs = self._set_lr()
            logs = self.train_step(batch)
            for key, value in logs.items():
                sums[key] += value
            codebook.add(logs)
            count += 1
            self.step += 1
            bar.update(1)
            if self._out_of_time(deadline) or self.stopped_by:  # time-boxed or signalled: log, checkpoint, stop
                last = self.step
            if self.step % self.cfg.log_every == 0 or self.step == last:
                means = {k: v / count for k, v in sums.items()}
                if self.dist.enabled:
                    means = distributed.mean_over_ranks(means, self.device)
                if main:
                    self._log_row({**lrs, **means}, writer)
                bar.set_postfix({k: f"{v:.3g}" for k, v in means.items() if k.endswith(("mel", "generator"))})
                sums.clear()
                count = 0
            if self.dist.enabled and (self.step % self.cfg.check_sync_every == 0 or self.step == last):
                distributed.assert_in_sync(self.task.modules(), self.step, self.device)
            if validator is not None and (self.step % self.recipe.validation.every == 0 or self.step == last):
                began = time.time()
                validator(writer, began - start - validating, codebook.means())
                validating += time.time() - began
            if self.step % self.cfg.checkpoint_every == 0 or self.step == last:
                self.save()

    def _check_resume_recipe(self) -> None:
        """A run resumes with the recipe it started with (up to RESUMABLE keys); checked before recipe.yaml is
        rewritten, so a refused resume leaves the run as it was."""
        path = self.run_dir / "recipe.yaml"
        if not path.is_file() or checkpoints.latest(self.run_dir) is None:
            return
        started = yaml.safe_load(path.read_text())
        now = yaml.safe_load(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        changed = changes_for_resume(started if isinstance(started, dict) else {}, now)
        if changed:
            shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise ValueError(f"{self.run_dir}: cannot resume with another {shown} than the run started with "
                             "(see its recipe.yaml); start a new --run-dir, or one with train.init_from= an export "
                             "of this run")

    def _out_of_time(self, deadline: float) -> bool:
        """Past the deadline. Under torchrun, rank 0's clock decides at logging steps, so every rank stops at the
        same step with one collective per log interval."""
        if not self.dist.enabled:
            return time.time() > deadline
        if self.step % self.cfg.log_every:
            return False
        late = torch.tensor(float(time.time() > deadline), device=self.device)
        torch.distributed.broadcast(late, src=0)
        return bool(late)

    @checkpoints.with_own_rng
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimizer step per group on `batch`, as `grad_accum` micro-batches; the mean of their logs."""
        micro = _chunk(batch, self.cfg.grad_accum)
        logs: dict[str, float] = defaultdict(float)
        for i, part in enumerate(micro):
            def update(group: str, loss: Tensor, first: bool = i == 0, last: bool = i == len(micro) - 1) -> None:
                self._update(group, loss / len(micro), first, last)

            with self.precision.autocast():
                for key, value in self.task.step(part, self.step, update).items():
                    logs[key] += value / len(micro)
        self.precision.update()
        return dict(logs)

    def _update(self, group: str, loss: Tensor, first: bool = True, last: bool = True) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: {group} loss is {float(loss)}")
        opt = self.optimizers[group]
        if first:
            opt.zero_grad(set_to_none=True)
        with autocast_off(loss):
            self.precision.backward(loss)
        if not last:
            return
        module = self.task.modules()[group]
        if self.dist.enabled:
            distributed.average_gradients(module.parameters(), self.dist.world_size)
        clip = self._optim_cfg(group).grad_clip
        if math.isfinite(clip):
            self.precision.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        self.precision.step(opt)
        if self.ema is not None and group == self.task.export_group:
            self.ema.update(module, self.step)

    # -- validation and export --------------------------------------------------------------------------

    def _validator(self):
        """A callable that validates and records, or None when validation is off (built once: the dev subset is
        read once)."""
        vcfg = self.recipe.validation
        if vcfg.every <= 0:
            return None
        subset = dev_subset(vcfg, self.recipe.data)
        references = dict(subset[: vcfg.samples])

        def validate(writer, train_seconds: float, train_stats: dict[str, float]) -> None:
            with self.export_weights():
                result = self.task.validate(subset, vcfg, self.device)
            self.task.train()
            row = {"step": self.step, "train_seconds": round(train_seconds, 1), **result.metrics, **train_stats}
            append_csv(self.run_dir / "validation.csv", row)
            if result.samples:
                save_samples(self.run_dir, self.step, result, references)
            if writer is not None:
                for key, value in result.metrics.items():
                    writer.add_scalar(key, value, self.step)
            log.info("step %d: %s", self.step, " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))

        return validate

    @contextlib.contextmanager
    def export_weights(self, use_ema: bool = True):
        """Within the block, the exported group holds its EMA weights (when the run keeps an EMA)."""
        if self.ema is None or not use_ema:
            yield
            return
        module = self.task.modules()[self.task.export_group]
        current = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.ema.copy_to(module)
        try:
            yield
        finally:
            module.load_state_dict(current)

    def export(self, use_ema: bool = True):
        """The inference tokenizer, from the EMA weights when the run keeps an EMA (and `use_ema`)."""
        with self.export_weights(use_ema):
            return self.task.export()

    # -- state ------------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "modules": {k: m.state_dict() for k, m in self.task.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": self.precision.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "seconds": self.seconds(),
            "task_rng": self.task.rng.get_state() if self.task.rng is not None else None,
        }

    def seconds(self) -> float:
        """Wall seconds of this run so far, over all its jobs."""
        return self.seconds_before + time.time() - self.job_start

    @checkpoints.with_own_rng
    def save(self) -> Path | None:
        """Rank 0 writes the checkpoint (every rank holds the same weights); the others wait for it."""
        path = None
        if self.dist.is_main:
            path = checkpoints.save(self.run_dir, self.step, self.state(), self.cfg.keep_checkpoints)
            log.info("checkpoint %s", path)
        if self.dist.enabled:
            torch.distributed.barrier()
        return path

    @checkpoints.with_own_rng
    def resume(self, path: Path | None = None) -> bool:
        """Load `path`, or the run's latest readable checkpoint (an unreadable one, cut by a kill or a full disk,
        is skipped with a warning)."""
        if path is None:
            found = checkpoints.latest_readable(self.run_dir)
            if found is None:
                return False
            path, state = found
        else:
            state = checkpoints.load(path)
        for name, module in self.task.modules().items():
            module.load_state_dict(state["modules"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.precision.load_state_dict(state.get("scaler", {}))
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:  # the run had no EMA until now: start it from the current weights
            self.ema = EMA(self.task.modules()[self.task.export_group], self.cfg.ema_decay, self.cfg.ema_start)
        checkpoints.set_rng_state(state["rng"])
        if state.get("task_rng") is not None and self.task.rng is not None:  # absent from earlier checkpoints
            self.task.rng.set_state(state["task_rng"])
        self.step = int(state["step"])
        self.seconds_before = float(state.get("seconds", 0.0))
        log.info("resumed %s at step %d", self.run_dir, self.step)
        return True

    def _log_row(self, values: dict[str, float], writer) -> None:
        append_csv(self.run_dir / "log.csv", {"step": self.step, "seconds": round(self.seconds(), 2), **values})
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(key, value, self.step)


class CodebookHealth:
    """Means of the quantizer's per-step stats (`vq/resets_per_step`, `vq/usage`, `vq/perplexity`) over the steps
    since the last call of `means`, for validation.csv: a codebook that churns or collapses shows there."""

    KEYS = ("vq/resets_per_step", "vq/usage", "vq/perplexity")

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.steps = 0

    def add(self, logs: dict[str, float]) -> None:
        if any(k in logs for k in self.KEYS):
            for key in self.KEYS:
                self.sums[key] += logs.get(key, 0.0)
            self.steps += 1

    def means(self) -> dict[str, float]:
        out = {f"train/{k}": v / self.steps for k, v in self.sums.items()} if self.steps else {}
        self.sums.clear()
        self.steps = 0
        return out


def drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of a step-indexed CSV up to `step` (a resumed job writes the later ones again)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
    if len(kept) != len(rows):
        _write_csv(path, fields, kept)


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


def _progress(total: int, initial: int, disable: bool = False):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
                disable=disable)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed; logging to log.csv only")
        return None
    return SummaryWriter(str(run_dir / "tb"))


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    return tuple(t.to(device, non_blocking=True) for t in batch)


def _chunk(batch: Batch, n: int) -> list[Batch]:
    """`n` micro-batches along the batch dimension (of every tensor of a tuple batch)."""
    if isinstance(batch, Tensor):
        return list(batch.chunk(n))
    return list(zip(*(t.chunk(n) for t in batch)))
