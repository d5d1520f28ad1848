"""Which files a command works on, and where each one's output goes (subfolders mirrored)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def scan(directory: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Files under `directory` (recursively, into symlinked folders too, each real folder once: a link back up
    the tree is no loop) with one of `extensions`, in sorted order."""
    found, seen = [], set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in extensions and (Path(root) / f).is_file()]
    return sorted(found)


def plan(inputs: list[str], output: str | None, suffix: str, extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
         beside_suffix: str | None = None) -> list[Job]:
    """Map inputs to outputs.

    One input file and `output`: `output` is the file, unless it ends in `/` or is a directory. Several inputs, a
    directory, or an `output` directory: each file gets `output/<stem><suffix>`, with the subfolders under a given
    directory mirrored. No `output`: beside each input, as `<stem><beside_suffix or suffix>`. Two inputs that
    would write the same file are an error.
    """
    sources: list[tuple[Path, Path]] = []  # (file, path relative to its root)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [(f, f.relative_to(path)) for f in scan(path, extensions)]
        else:
            sources.append((path, Path(path.name)))
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and not names_directory(output)
    jobs = []
    for source, rel in sources:
        if output is None:
            target = source.with_name(source.stem + (beside_suffix or suffix))
        elif single:
            target = Path(output)
        else:
            target = Path(output) / rel.with_name(rel.stem + suffix)
        jobs.append(Job(source, target))
    _check_unique(jobs)
    return jobs


def names_directory(output: str | None) -> bool:
    """`output` ends in a path separator (`out/`: a directory to create) or is an existing directory."""
    if output is None:
        return False
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def check_targets(jobs: list[Job], refused_suffixes: tuple[str, ...], why: str) -> None:
    """Before any work: no output is an input (the same file, also under another name or a hard link), none has
    a suffix of `refused_suffixes` (`why` says what to do instead), and every output's directory can be made.
    Raises OutputError."""
    from ..errors import OutputError

    for job in jobs:
        if job.target.exists() and job.source.exists() and os.path.samefile(job.source, job.target):
            raise OutputError(f"{job.target}: is the input {job.source}; refusing to overwrite it")
        if job.target.suffix.lower() in refused_suffixes:
            raise OutputError(f"{job.target}: {why}")
    for parent in sorted({job.target.parent for job in jobs}):
        _check_creatable(parent)


def _check_creatable(directory: Path) -> None:
    """`directory` exists, or its nearest existing ancestor is a writable directory."""
    from ..errors import OutputError

    base = directory
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise OutputError(f"{directory}: cannot create the output directory ({base} is a file)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: cannot write there ({base} is not writable)")


def _check_unique(jobs: list[Job]) -> None:
    seen: dict[str, Path] = {}
    for job in jobs:
        key = os.path.normcase(os.path.abspath(job.target))
        if key in seen:
            raise ValueError(f"{job.source} and {seen[key]} would both write {job.target}")
        seen[key] = job.source
