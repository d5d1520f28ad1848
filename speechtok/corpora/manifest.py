"""Manifests: `.tsv` (a header with a `path` column) or `.jsonl` (objects with a `path` key), with optional
`id`, `speaker`, `duration_s` (or `duration`), `split` and `text` (DESIGN.md, "File formats"). Training,
evaluation and pre-tokenization all read them here."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".tsv", ".jsonl")


class MissingFilesError(FileNotFoundError):
    """A manifest lists files that do not exist. `what` says how many and the first, without the hint on what to
    pass, so that a caller with other names for the arguments (the CLI's flags) can give its own."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; pass root= or skip_missing=True")
        self.what = what


@dataclass(frozen=True)
class Item:
    """One audio file of a training set, with what its manifest says about it."""

    path: Path
    speaker: str | None = None
    duration_s: float | None = None
    split: str | None = None
    text: str | None = None
    id: str | None = None  # the manifest's `id` column, where it has one


# -- manifests -------------------------------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike, root: str | os.PathLike | None = None, splits: Sequence[str] = (),
                  skip_missing: bool = False, check_exists: bool = True) -> list[Item]:
    """Items of a `.tsv` (header with a `path` column) or `.jsonl` (objects with a `path` key) manifest.

    Relative paths are resolved against `root`, or (None) the manifest's directory, else its parent. `splits`
    keeps only rows whose `split` is one of them. Listed files that do not exist raise FileNotFoundError
    (how many, and the first), unless `skip_missing`, which logs them and leaves them out, or `check_exists` is
    False (an evaluation keeps them, to log and count them as it goes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        rows = _read_tsv(path)
    elif suffix == ".jsonl":
        rows = _read_jsonl(path)
    else:
        raise ValueError(f"{path}: not a manifest; expected .tsv or .jsonl")
    base = Path(root).expanduser() if root is not None else _guess_root(path, rows)
    items = [_to_item(path, line, row, base) for line, row in rows]
    if splits:
        if items and all(it.split is None for it in items):
            raise ValueError(f"{path}: no split labels to select {list(splits)} from")
        items = [it for it in items if it.split in splits]
    return _existing(path, items, base, skip_missing) if check_exists else items


def _read_tsv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, {column: value}) of each non-empty row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}:1: empty header; a .tsv manifest starts with a header that has a 'path' column")
    header = lines[0].split("\t")
    if "path" not in header:
        raise ValueError(f"{path}:1: header {header} has no 'path' column")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path}:{number}: {len(fields)} tab-separated fields, the header has {len(header)}")
        rows.append((number, dict(zip(header, fields))))
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not row["path"]:
            raise ValueError(f"{path}:{number}: expected an object with a 'path' string")
        rows.append((number, row))
    return rows


def _guess_root(manifest: Path, rows: list[tuple[int, dict[str, Any]]]) -> Path:
    """The manifest's directory, or its parent if only the parent holds the first relative path."""
    candidates = (manifest.parent, manifest.parent.parent)
    relative = next((Path(r["path"]) for _, r in rows if r["path"] and not Path(r["path"]).is_absolute()), None)
    if relative is not None:
        for base in candidates:
            if (base / relative).exists():
                return base
    return candidates[0]


def _to_item(manifest: Path, number: int, row: dict[str, Any], base: Path) -> Item:
    def text(key: str) -> str | None:
        value = row.get(key)
        return None if value is None or value == "" else str(value)

    if not text("path"):
        raise ValueError(f"{manifest}:{number}: empty path")
    duration = text("duration_s") or text("duration")
    try:
        seconds = None if duration is None else float(duration)
    except ValueError:
        raise ValueError(f"{manifest}:{number}: duration {duration!r} is not a number") from None
    path = Path(str(row["path"])).expanduser()
    return Item(path if path.is_absolute() else base / path, text("speaker"), seconds, text("split"), text("text"),
                text("id"))


def _existing(manifest: Path, items: list[Item], base: Path, skip_missing: bool) -> list[Item]:
    missing = [it.path for it in items if not it.path.is_file()]
    if not missing:
        return items
    what = f"{manifest}: {len(missing)} of {len(items)} listed files are missing (first: {missing[0]}; root {base})"
    if not skip_missing:
        raise MissingFilesError(what)
    log.warning("%s; skipping them", what)
    gone = set(missing)
    return [it for it in items if it.path not in gone]
