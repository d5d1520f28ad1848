"""Which files a command works on, and where each one's output goes (subfolders mirrored)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .audio import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def scan(directory: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Files under `directory` (recursively) with one of `extensions`, in sorted order."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def plan(inputs: list[str], output: str | None, suffix: str, extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
         beside_suffix: str | None = None) -> list[Job]:
    """Map inputs to outputs.

    One input file and `output`: `output` is the file. Several inputs or a directory: `output` is a directory;
    each file gets `<stem><suffix>`, with the subfolders under a given directory mirrored. No `output`: beside
    each input, as `<stem><beside_suffix or suffix>`. Two inputs that would write the same file are an error.
    """
    sources: list[tuple[Path, Path]] = []  # (file, path relative to its root)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [(f, f.relative_to(path)) for f in scan(path, extensions)]
        else:
            sources.append((path, Path(path.name)))
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir()
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


def _check_unique(jobs: list[Job]) -> None:
    seen: dict[str, Path] = {}
    for job in jobs:
        key = os.path.normcase(os.path.abspath(job.target))
        if key in seen:
            raise ValueError(f"{job.source} and {seen[key]} would both write {job.target}")
        seen[key] = job.source
