"""The item list of a run: inputs in the order given without duplicates, their ids and hash, and which items
are part k of N (items k, k + N, k + 2N, ...)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..corpora import MANIFEST_SUFFIXES, Item, MissingFilesError, collect_items, read_manifest
from .errors import MissingInputsError, PretokenizeError

log = logging.getLogger(__name__)


def collect_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike], root: str | os.PathLike | None = None,
                   splits: Sequence[str] = (), skip_missing: bool = False) -> list[Item]:
    """Items of directories (scanned recursively), manifests (`.tsv`, `.jsonl`, read by `speechtok.corpora`) and
    audio files, in the order given, without duplicates (by absolute path; the first is kept).

    A listed audio file that is missing or unreadable stays in the list and is skipped as a failure when read.
    A manifest that lists missing files is a MissingInputsError unless `skip_missing`: then they stay in the list
    too, to be skipped and listed in `.failures.tsv` as any bad file is.
    """
    sources = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    items: list[Item] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.is_dir() and path.suffix.lower() not in MANIFEST_SUFFIXES:
            items.append(Item(path))  # an audio file (or not): reading it says what is wrong with it
            continue
        try:
            items += _listed(path, root, splits, skip_missing)
        except MissingFilesError as e:  # the manifest's own, as the pretokenize error type
            raise MissingInputsError(e.what) from None
        except (ValueError, FileNotFoundError) as e:
            raise PretokenizeError(str(e)) from None
    seen: set[str] = set()
    unique = []
    for item in items:
        key = os.path.abspath(item.path)
        if key not in seen:
            seen.add(key)
            unique.append(Item(Path(key), item.speaker, item.duration_s, item.split, item.text, item.id))
    return unique


def _listed(path: Path, root: str | os.PathLike | None, splits: Sequence[str], skip_missing: bool) -> list[Item]:
    """Items of a directory or a manifest; a manifest's missing files kept with `skip_missing` (see
    collect_inputs)."""
    if path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file() and skip_missing:
        return read_manifest(path, root, splits, check_exists=False)
    return collect_items([path], root, splits)


def item_ids(paths: Sequence[Path]) -> list[str]:
    """Each path relative to the deepest folder that holds them all, without its suffix (`spk1/utt3`); files
    that would share an id (`a.wav`, `a.flac`) keep their suffixes."""
    if not paths:
        return []
    base = os.path.commonpath([str(Path(p).parent) for p in paths])
    rel = [Path(os.path.relpath(p, base)).as_posix() for p in paths]
    stems = [r[: -len(Path(r).suffix)] if Path(r).suffix else r for r in rel]
    counts = Counter(stems)
    return [s if counts[s] == 1 else r for s, r in zip(stems, rel)]


def manifest_or_path_ids(items: Sequence[Item]) -> list[str]:
    """A manifest's `id` where it gives one, else the id `item_ids` derives from the path; two items with one id
    are an error (a dataset row must name one file)."""
    ids = [it.id or derived for it, derived in zip(items, item_ids([it.path for it in items]))]
    first: dict[str, Path] = {}
    for item, i in zip(items, ids):
        if i in first:
            raise PretokenizeError(f"id {i!r} names two files ({first[i]} and {item.path}); ids must be unique")
        first[i] = item.path
    return ids


def inputs_hash(ids: Sequence[str], paths: Sequence[Path]) -> str:
    """16 hex digits of sha256 over the item list: a resumed run must list the same items in the same order."""
    h = hashlib.sha256()
    for i, p in zip(ids, paths):
        h.update(f"{i}\t{p}\n".encode())
    return h.hexdigest()[:16]


def split_part(n: int, num_parts: int, part: int) -> list[int]:
    """Indices of part `part` of `num_parts` of n items: part, part + N, part + 2N, ... (disjoint, and together
    all of range(n); striding spreads long and short files over the parts)."""
    if num_parts < 1 or not 0 <= part < num_parts:
        raise ValueError(f"part {part} is not in 0..{num_parts - 1} (num_parts {num_parts})")
    return list(range(part, n, num_parts))


def resolve_part(num_parts: int | None, part: int | None) -> tuple[int, int]:
    """(num_parts, part): the arguments; else torchrun's WORLD_SIZE and RANK; else (1, 0)."""
    if num_parts is None and part is None and "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"]), int(os.environ.get("RANK", "0"))
    if (num_parts is None) != (part is None):
        raise ValueError("give both num_parts and part, or neither")
    if num_parts is None:
        return 1, 0
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        log.warning("num_parts=%d, part=%d given: WORLD_SIZE and RANK are ignored", num_parts, part)
    split_part(0, num_parts, part)  # validates
    return int(num_parts), int(part)


def describe(inputs: Any) -> str:
    return str(inputs) if isinstance(inputs, (str, os.PathLike)) else " ".join(map(str, inputs))
