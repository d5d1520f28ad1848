"""Kill-and-resume at random moments: `speechtok pretokenize` SIGKILLed several times (once in a shard's write,
then at seeded random delays), resumed each time, ends with the dataset of an uninterrupted run."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from .test_pretokenize import SLOW_WRITER, cli, no_temps, read_failures, read_rows, write_corpus

SHARD_SIZE = 2  # 14 items (11 good, 3 bad): 7 shards, each written to a temp name, then 0.3 s, then renamed
NUM_SHARDS = 7
KILLS = 2  # at random delays, after the one in a shard's write
SEED = 1234


def command(ckpt: Path, corpus: Path, out: Path) -> list[object]:
    return ["pretokenize", ckpt, corpus, "-o", out, "--no-progress", "--shard-size", SHARD_SIZE, "--bucket-size",
            SHARD_SIZE, "--num-workers", 0]


def shards(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("part-*.parquet"))


def temps(out: Path) -> list[Path]:
    return list(out.glob(".part-*.tmp"))


def wait_for(proc, done, timeout: float = 90) -> float:
    """Poll until `done()` or the process ends; the seconds it took."""
    t0 = time.monotonic()
    while not done() and proc.poll() is None:
        assert time.monotonic() - t0 < timeout, "the run made no progress"
        time.sleep(0.01)
    return time.monotonic() - t0


def finish(proc) -> None:
    """Let a run end on its own; it must succeed."""
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]


def kill(proc) -> bool:
    """SIGKILL the run, unless it has ended already (a kill that lands late is fine); whether it was killed."""
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return alive


@pytest.fixture()
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    return write_corpus(root)


def timed_clean_run(ckpt: Path, corpus: Path, out: Path) -> tuple[float, float]:
    """The uninterrupted run, as the killed ones run (the same slow writer): seconds from its start to its first
    shard, and to its end."""
    t0 = time.monotonic()
    proc = cli(*command(ckpt, corpus, out), code=SLOW_WRITER)
    first = wait_for(proc, lambda: bool(shards(out)))
    finish(proc)
    return first, time.monotonic() - t0


def assert_partial_is_consistent(out: Path, clean: dict[str, dict]) -> None:
    """What a killed run leaves: whole shards only (its temp files are no data), each row that of the clean run."""
    rows = read_rows(out)  # pyarrow's discovery: duplicate ids fail; `.part-*.tmp` is skipped
    assert set(rows) <= set(clean)
    for key, row in rows.items():
        assert row == clean[key], key


def test_killed_at_random_moments_resumes_to_the_uninterrupted_dataset(tiny_ckpt, corpus, tmp_path):
    clean_dir, out = tmp_path / "clean", tmp_path / "ds"
    first, end = timed_clean_run(tiny_ckpt, corpus, clean_dir)
    assert shards(clean_dir) == [f"part-00000-{n:05d}.parquet" for n in range(NUM_SHARDS)]
    clean = read_rows(clean_dir)
    per_shard = (end - first) / (NUM_SHARDS - 1)
    rng = random.Random(SEED)

    # in a shard's write: its temp file is there, its rename 0.3 s away
    proc = cli(*command(tiny_ckpt, corpus, out), code=SLOW_WRITER)
    wait_for(proc, lambda: bool(shards(out)) and bool(temps(out)))
    time.sleep(rng.uniform(0, 0.15))
    assert kill(proc) and temps(out), "not killed in a shard's write"
    assert_partial_is_consistent(out, clean)

    killed = 1
    for _ in range(KILLS):  # from the start to this run's expected end: before, during or between shards
        left = NUM_SHARDS - len(shards(out))
        proc = cli(*command(tiny_ckpt, corpus, out), code=SLOW_WRITER)
        time.sleep(rng.uniform(0.5 * first, first + left * per_shard))
        killed += kill(proc)
        assert_partial_is_consistent(out, clean)

    finish(cli(*command(tiny_ckpt, corpus, out), code=SLOW_WRITER))  # the last resume, to the end
    assert shards(out) == shards(clean_dir) and no_temps(out)
    rows = read_rows(out)
    assert sorted(rows) == sorted(clean)  # none missing, none extra (and no duplicate: read_rows)
    for key, row in rows.items():  # the same windows and batches as the clean run: identical codes
        assert row == clean[key], key
    assert read_failures(out) == read_failures(clean_dir)  # each bad file listed once
    frame = pd.read_parquet(out)
    assert len(frame) == len(clean) and sorted(frame["id"]) == sorted(clean)
    assert all(np.array_equal(np.stack(c), np.asarray(clean[i]["codes"])) for i, c in zip(frame["id"],
                                                                                          frame["codes"]))
    assert sum(pq.ParquetFile(out / name).metadata.num_rows for name in shards(out)) == len(clean)
    assert killed >= 1
