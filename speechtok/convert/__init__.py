"""`speechtok convert KIND SRC -o OUT`: checkpoints in formats that need a full unpickle (fairseq / textlesslib
k-means joblib files, pickled peer checkpoints) become safe files (safetensors + JSON) that load without one.

Loading code everywhere else reads only safetensors, `.npy` and `torch.load(weights_only=True)`. Unpickling can
run arbitrary code, so it happens only here, only for a file the user names, and only with `--unpickle`
(`trust_pickle=True` in Python): a converter that needs it refuses otherwise and says so.

Each converter module registers itself in CONVERTERS under its KIND with `@converter("kind", "what it reads")`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError

# KIND -> module defining it (imported on first use so `speechtok --help` stays fast).
MODULES: dict[str, str] = {"torch-pickle": "speechtok.convert.torch_pickle",
                           "kmeans-joblib": "speechtok.convert.kmeans"}


@dataclass(frozen=True)
class Converter:
    kind: str
    help: str
    needs_unpickle: bool
    run: Callable[[Path, Path], Path]  # (src, out) -> the written file or directory


CONVERTERS: dict[str, Converter] = {}


def converter(kind: str, help: str, needs_unpickle: bool = True):
    """Register `run(src, out) -> Path` as the converter of `kind`."""

    def register(run: Callable[[Path, Path], Path]) -> Callable[[Path, Path], Path]:
        CONVERTERS[kind] = Converter(kind, help, needs_unpickle, run)
        return run

    return register


def kinds() -> dict[str, str]:
    """KIND -> one-line help, for every converter (importing their modules)."""
    for module in sorted(set(MODULES.values())):
        importlib.import_module(module)
    return {k: c.help for k, c in sorted(CONVERTERS.items())}


def convert(kind: str, src: str | Path, out: str | Path, trust_pickle: bool = False) -> Path:
    """Convert `src` of format `kind` into safe files at `out`; returns what was written."""
    if kind not in MODULES and kind not in CONVERTERS:
        raise CheckpointError(f"unknown conversion {kind!r}; known: {', '.join(kinds()) or 'none'}")
    if kind in MODULES:
        importlib.import_module(MODULES[kind])
    conv = CONVERTERS[kind]
    src = Path(src)
    if not src.exists():
        raise CheckpointError(f"{src}: no such file or directory")
    if conv.needs_unpickle and not trust_pickle:
        raise CheckpointError(f"{src}: converting {kind} unpickles the file, which can run code inside it; "
                              "pass --unpickle (trust_pickle=True) if you trust where it came from")
    return conv.run(src, Path(out))
