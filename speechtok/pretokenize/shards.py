"""Shards and their files: which items a shard holds, its Parquet table, its failures sidecar (written first, so
a shard that exists is complete) and `.failures.tsv` rebuilt from the sidecars."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fileio import atomic_path, write_text
from ..lm import LMVocab, get_pattern

log = logging.getLogger(__name__)


FAILURES_NAME = ".failures.tsv"


FAILURES_HEADER = "id\tpath\terror"


@dataclass(frozen=True)
class Failure:
    """A file that was skipped, and why (one line)."""

    id: str
    path: str
    error: str


def run_lengths(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """codes [Q, T] -> (units [Q, U], durations [U]): runs of frames equal on every codebook, kept once, with the
    number of frames of each run; `np.repeat(units, durations, axis=1)` gives `codes` back."""
    if codes.shape[-1] == 0:
        return codes, np.zeros(0, np.int32)
    change = (codes[:, 1:] != codes[:, :-1]).any(axis=0)
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    durations = np.diff(np.concatenate([starts, [codes.shape[-1]]])).astype(np.int32)
    return codes[:, starts], durations


@dataclass
class Shard:
    """Shard `number` of a part: items `start`, `start + 1`, ... of the part's list, and what became of them."""

    number: int
    start: int
    ids: list[str]
    paths: list[str]
    rows: dict[int, tuple] = field(default_factory=dict)  # index -> (codes [Q, T], duration_s, segment scales)
    failures: dict[int, str] = field(default_factory=dict)  # index -> error
    windows_left: int = 0

    @property
    def indices(self) -> range:
        return range(self.start, self.start + len(self.ids))

    def skip(self, index: int, error: str) -> None:
        path = self.paths[index - self.start]
        self.failures[index] = error = _strip_source(error, path)
        log.warning("skipped %s: %s", path, error)

    def take(self) -> tuple[list[tuple], list[Failure]]:
        """(rows (id, source_path, codes, duration_s, scales or None), failures), in item order; the rows are let
        go."""
        rows = [(self.ids[i - self.start], self.paths[i - self.start], *self.rows.pop(i))
                for i in self.indices if i in self.rows]
        failures = [Failure(self.ids[i - self.start], self.paths[i - self.start], self.failures[i])
                    for i in self.indices if i in self.failures]
        return rows, failures


def make_shards(ids: Sequence[str], paths: Sequence[str | os.PathLike], positions: Sequence[int],
                shard_size: int) -> list[Shard]:
    """A part's shards: `shard_size` consecutive items of `positions` (indices into `ids` / `paths`) each."""
    shards = []
    for n, a in enumerate(range(0, len(positions), shard_size)):
        chunk = positions[a : a + shard_size]
        shards.append(Shard(n, a, [ids[k] for k in chunk], [str(paths[k]) for k in chunk]))
    return shards


def shard_name(part: int, number: int) -> str:
    return f"part-{part:05d}-{number:05d}.parquet"


def _failures_sidecar(out: Path, part: int, number: int) -> Path:
    return out / f".part-{part:05d}-{number:05d}.failures.tsv"


def shard_done(out: Path, part: int, shard: Shard) -> bool:
    """The shard's Parquet file exists, or its failures sidecar lists every item (nothing to write)."""
    if (out / shard_name(part, shard.number)).is_file():
        return True
    side = _failures_sidecar(out, part, shard.number)
    return side.is_file() and {_unescape(line.split("\t")[0]) for line in read_failures(side)} == set(shard.ids)


def write_shard(out: Path, part: int, number: int, rows: list[tuple],
                 failures: list[Failure], meta: dict, dedup: bool) -> None:
    """Failures sidecar first (or its removal), then the Parquet file: a shard that exists is complete."""
    side = _failures_sidecar(out, part, number)
    if failures:
        write_text(side, _failures_text(failures))
    elif side.exists():
        side.unlink()
    if rows:
        table = _table(rows, meta, dedup)
        with atomic_path(out / shard_name(part, number)) as tmp:
            _write_parquet(table, tmp)


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, str(path), compression="zstd")


def _table(rows: list[tuple], meta: dict, dedup: bool):
    """rows (id, source_path, codes [Q, T], duration_s, scales) -> a pyarrow Table with the DESIGN.md columns
    (+ `segment_scales` list<float32> for segmented codecs, which decoding needs)."""
    import pyarrow as pa

    columns = {
        "id": pa.array([r[0] for r in rows], pa.string()),
        "codes": _nested([r[2] for r in rows]),
        "num_frames": pa.array([r[2].shape[-1] for r in rows], pa.int32()),
        "duration_s": pa.array([r[3] for r in rows], pa.float64()),
        "source_path": pa.array([r[1] for r in rows], pa.string()),
    }
    if dedup:
        runs = [run_lengths(r[2]) for r in rows]
        columns["units"] = _nested([u for u, _ in runs])
        columns["durations"] = _lists([d for _, d in runs])
    if "segment_scales" in meta["columns"]:
        columns["segment_scales"] = pa.array([r[4].tolist() for r in rows], pa.list_(pa.float32()))
    if meta.get("lm"):
        columns.update(_lm_columns([r[2] for r in rows], meta["lm"]))
    table = pa.table(columns)
    return table.replace_schema_metadata({"speechtok": json.dumps(meta)})


def _lm_columns(codes: list[np.ndarray], lm: dict) -> dict:
    """`input_ids` of each row in the dataset's pattern and vocabulary (and `input_durations` for units)."""
    pattern, vocab = get_pattern(lm["pattern"]), LMVocab.from_dict(lm["vocab"])
    tokens = [pattern.encode(c, vocab) for c in codes]
    ids = [t.ids.astype(np.int32) for t in tokens]
    columns = {"input_ids": _nested(ids) if ids[0].ndim == 2 else _lists(ids)}
    if lm["pattern"] == "units":
        columns["input_durations"] = _lists([t.durations.astype(np.int32) for t in tokens])
    return columns


def _nested(arrays: list[np.ndarray]):
    """[Q, T] integer arrays -> list<list<intN>>, built from flat buffers (no Python loop over frames)."""
    import pyarrow as pa

    q_counts = [a.shape[0] for a in arrays]
    inner_lengths = np.concatenate([np.full(a.shape[0], a.shape[1], np.int32) for a in arrays]) if arrays else []
    inner_offsets = np.concatenate([[0], np.cumsum(inner_lengths)]).astype(np.int32)
    outer_offsets = np.concatenate([[0], np.cumsum(q_counts)]).astype(np.int32)
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.int16)
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets), pa.array(flat))
    return pa.ListArray.from_arrays(pa.array(outer_offsets), inner)


def _lists(arrays: list[np.ndarray]):
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int32)
    flat = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _failures_text(failures: Sequence[Failure]) -> str:
    """One line a failure, whatever its file is called: tabs, newlines and backslashes in the id and the path
    are written as \\t, \\n, \\r and \\\\ (the error is one line already)."""
    return "".join(f"{_escape(f.id)}\t{_escape(f.path)}\t{_tsv_field(f.error)}\n" for f in failures)


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in str(text))


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


def read_failures(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def rebuild_failures(out: Path) -> None:
    """`.failures.tsv` = the failures sidecars of every part, in shard order (under the lock)."""
    for stale in out.glob(f".{FAILURES_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)
    lines = [line for side in sorted(out.glob(".part-*.failures.tsv")) for line in read_failures(side)]
    write_text(out / FAILURES_NAME, "\n".join([FAILURES_HEADER, *lines]) + "\n")


def _strip_source(error: str, path: str) -> str:
    """The error without a leading `path: ` (the failures file has a path column)."""
    prefix = f"{path}: "
    return error[len(prefix):] if error.startswith(prefix) else error


def _tsv_field(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())
