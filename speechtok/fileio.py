"""Atomic writes: everything is written to a hidden temp name beside the target, then renamed."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@functools.cache
def _file_mode() -> int:
    """What a plain `open(..., "w")` would give: 0o666 less the umask (mkstemp's files are 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temps(targets: list[Path]) -> int:
    """Delete the temp files `atomic_path` left for these targets (and their `.json` sidecars) when a run was
    killed mid-write; one directory listing per folder. Returns how many."""
    names_by_dir: dict[Path, set[str]] = {}
    for target in targets:
        names_by_dir.setdefault(Path(target).parent, set()).update({Path(target).name, Path(target).name + ".json"})
    removed = 0
    for folder, names in names_by_dir.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            stem = entry.name[1:].rsplit(".", 2)[0] if entry.name.startswith(".") else ""
            if entry.name.endswith(".tmp") and stem in names and entry.is_file():
                os.unlink(entry.path)
                removed += 1
    return removed
