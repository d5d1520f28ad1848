"""Training checkpoints in a run directory: `checkpoints/step-00001000.pt`, read back with weights_only=True.

They hold every module, optimizer and scheduler state, the step, and the RNG states of torch, numpy and
Python's `random` (vector-quantize-pytorch's quantizer dropout draws from it), so a resumed run continues.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import pickle
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import CheckpointError
from ..fileio import atomic_path

log = logging.getLogger(__name__)

PATTERN = re.compile(r"step-(\d+)\.pt$")


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": _python_state_to_safe(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_python_state_from_safe(state["python"]))


class OwnRNG:
    """A trainer's own random streams (torch, CUDA, numpy, Python's `random`): swapped in while it works (`with
    rng.active():`, re-entrant) and out after, so that training leaves the process's streams as it found them.
    Libraries it drives (vector-quantize-pytorch's k-means init, code replacement, quantizer dropout) draw from the
    global streams, so they are the trainer's while it runs."""

    def __init__(self, seed: int) -> None:
        outside = rng_state()
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)  # quantizer dropout draws from it: one seed, one run
        self.state = rng_state()
        set_rng_state(outside)
        self._depth = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        if self._depth:
            yield
            return
        outside = rng_state()
        set_rng_state(self.state)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self.state = rng_state()
            set_rng_state(outside)


F = TypeVar("F", bound=Callable[..., Any])


def with_own_rng(method: F) -> F:
    """A trainer method that runs on the trainer's own random streams (`self.own_rng`)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.own_rng.active():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _python_state_to_safe(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_safe(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss


def save(run_dir: Path, step: int, payload: dict, keep: int) -> Path:
    folder = run_dir / "checkpoints"
    path = folder / f"step-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save({**payload, "step": step, "rng": rng_state()}, tmp)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink()
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    found = [p for p in folder.glob("step-*.pt") if PATTERN.search(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(PATTERN.search(p.name).group(1)))


def latest(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load(path: Path) -> dict:
    """A training checkpoint, read without running code; CheckpointError (one line) if it cannot be."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused: it holds pickled objects that only a full unpickle, which can run "
                              "code inside the file, would read (speechtok writes none)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable training checkpoint ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(state, dict) or "step" not in state or "modules" not in state:
        raise CheckpointError(f"{path}: not a speechtok training checkpoint (no step and modules)")
    return state


def latest_readable(run_dir: Path) -> tuple[Path, dict] | None:
    """(path, state) of the newest checkpoint that loads, newest first; unreadable ones are logged and passed."""
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        try:
            return path, load(path)
        except CheckpointError as e:
            log.warning("skipping %s", e)
    if found:
        raise CheckpointError(f"{run_dir / 'checkpoints'}: none of the {len(found)} checkpoints is readable")
    return None


def remove_stale_temps(run_dir: Path) -> None:
    """Temp files of checkpoint writes cut by a kill (a run directory has one writer: this job)."""
    folder = run_dir / "checkpoints"
    for stale in folder.glob(".step-*.pt.*.tmp") if folder.is_dir() else []:
        stale.unlink(missing_ok=True)
