"""Pre-tokenized datasets: Parquet shards that other tools read, batch- and chunk-invariant codes, bad files
skipped and listed, kill-and-resume, disjoint parts (explicit and torchrun's env) that add up to one run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset
import pytest
import soundfile as sf
import torch

import speechtok
from speechtok import audio
from speechtok.errors import SpeechtokError
from speechtok.models import build_codec
from speechtok.pretokenize import (
    FAILURES_NAME,
    META_NAME,
    PretokenizeError,
    bucket,
    collect_inputs,
    default_batch_seconds,
    item_ids,
    pretokenize,
    run_lengths,
    split_part,
)

from .conftest import speech, tiny_config, torch_threads
from .ties import real_disagreements

SMALL = dict(shard_size=2, bucket_size=2, num_workers=0)  # many shards from few files, no worker start-up
BAD = ("a_corrupt.wav", "u04_empty.wav", "z_short.wav")  # in the first shard, a middle one, the last one
BAD_IDS = tuple(Path(name).stem for name in BAD)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


def write_corpus(root: Path) -> Path:
    """11 good files of 0.25-2.75 s (one stereo at 22.05 kHz in a subfolder) and three bad ones."""
    clip = speech(8.0).numpy()
    for k in range(10):
        start = 3000 * k  # different audio in every file
        sf.write(root / f"u{k:02d}.wav", clip[start : start + 4000 + 4000 * k], 16000)
    (root / "sub").mkdir(parents=True)
    stereo = audio.resample(np.stack([clip, clip[::-1]])[:, :24000], 16000, 22050)
    sf.write(root / "sub" / "st.flac", stereo.T, 22050)
    (root / BAD[0]).write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    sf.write(root / BAD[1], np.zeros(0, np.float32), 16000)
    sf.write(root / BAD[2], clip[:200], 16000)  # under one 320-sample frame
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def clean(tiny_ckpt, corpus, tmp_path_factory) -> Path:
    """One uninterrupted single-process run: the reference dataset, made on one thread as the tests run."""
    out = tmp_path_factory.mktemp("clean") / "ds"
    with torch_threads(1):
        pretokenize(tiny_ckpt, corpus, out, **SMALL)
    return out


def read_rows(out: Path) -> dict[str, dict]:
    """id -> row, read with pyarrow's dataset discovery (no speechtok); duplicate ids fail."""
    table = pyarrow.dataset.dataset(out, format="parquet").to_table()
    rows = table.to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate rows: {sorted(i for i in ids if ids.count(i) > 1)}"
    return {r["id"]: r for r in rows}


def read_failures(out: Path) -> list[list[str]]:
    lines = (out / FAILURES_NAME).read_text().splitlines()
    assert lines[0] == "id\tpath\terror"
    return [line.split("\t") for line in lines[1:]]


def latents(tok, path: str) -> torch.Tensor:
    """Encoder latents [D, T] of a file alone, as its encode computes them."""
    return tok.encode_latents(audio.load(path, tok.sample_rate), tok.sample_rate)[0]


def assert_same_codes(tok, rows: dict[str, dict], expected: dict[str, dict]) -> None:
    """Same ids, and per item the same codes but for float near-ties (tests/ties.py; the latents of a
    pretokenize batch are not seen here, so their rounding is taken at its bound)."""
    assert sorted(rows) == sorted(expected)
    for key, row in rows.items():
        a, b = np.asarray(row["codes"]), np.asarray(expected[key]["codes"])
        assert a.shape == b.shape and row["num_frames"] == a.shape[1], key
        if not np.array_equal(a, b):
            real = real_disagreements(tok, latents(tok, row["source_path"]), torch.from_numpy(b).long(),
                                      torch.from_numpy(a).long())
            assert real == 0, f"{key}: {real} frames differ by more than a near-tie"


def no_temps(out: Path) -> bool:
    return not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


# -- the format ------------------------------------------------------------------------------------------------


def test_output_is_read_by_pyarrow_pandas_polars_and_datasets(clean, corpus, tok, tmp_path, monkeypatch):
    names = sorted(p.name for p in clean.iterdir())
    shards = [n for n in names if n.endswith(".parquet")]
    assert shards == [f"part-00000-{n:05d}.parquet" for n in range(7)]  # 14 files, 2 a shard
    assert all(n.startswith(".") or n in shards for n in names)  # nothing else a reader could take for data

    table = pyarrow.dataset.dataset(clean, format="parquet").to_table()
    assert table.schema.field("codes").type == pa.list_(pa.list_(pa.int16()))
    assert table.schema.field("num_frames").type == pa.int32()
    assert table.column_names == ["id", "codes", "num_frames", "duration_s", "source_path"]
    rows = read_rows(clean)
    assert sorted(rows) == sorted([f"u{k:02d}" for k in range(10)] + ["sub/st"])
    row = rows["u03"]
    assert len(row["codes"]) == 8 and row["num_frames"] == len(row["codes"][0]) == 50  # 16000 samples / 320
    assert row["duration_s"] == pytest.approx(1.0) and row["source_path"] == str(corpus / "u03.wav")
    assert rows["sub/st"]["duration_s"] == pytest.approx(1.5, abs=1e-3)

    meta = json.loads((clean / META_NAME).read_text())
    for key in ("tokenizer", "config_hash", "weights_hash", "sample_rate", "frame_rate", "num_codebooks",
                "codebook_size", "device", "dtype", "speechtok_version"):
        assert key in meta
    assert meta["config_hash"] == tok.config_hash and meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["sample_rate"] == 16000 and meta["frame_rate"] == 50 and meta["num_codebooks"] == 8

    import pandas as pd

    df = pd.read_parquet(clean)
    assert len(df) == 11 and set(df["id"]) == set(rows)
    import polars as pl

    assert pl.read_parquet(str(clean / "*.parquet")).shape == (11, 5)
    import datasets

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset("parquet", data_dir=str(clean), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert ds.num_rows == 11 and sorted(ds["id"]) == sorted(rows)
    assert ds.features["codes"].feature.feature.dtype == "int16"


def test_every_item_gets_its_codes_alone(tiny_ckpt, corpus, tok, tmp_path):
    """Padded batches with lengths, read by 2 worker processes, and chunked long files give each item the codes
    it gets alone in one pass (DESIGN.md, "Invariance": conv codec, at least 99.9% of frames, near-ties aside)."""
    chunked = speechtok.load(tiny_ckpt)
    chunked.chunk_seconds = 0.5  # the 2.75 s file is encoded in overlapping chunks
    shapes = []
    encode = chunked.encode

    def spy(wav, sample_rate, n_q=None, lengths=None):
        shapes.append(lengths.tolist())
        return encode(wav, sample_rate, n_q=n_q, lengths=lengths)

    chunked.encode = spy
    out = tmp_path / "ds"
    result = pretokenize(chunked, corpus, out, batch_seconds=6.0, bucket_size=16, num_workers=2, read_ahead=True)
    assert any(len(set(lengths)) > 1 for lengths in shapes)  # items of different lengths shared a batch
    assert max(len(lengths) for lengths in shapes) >= 3
    assert result.rows == 11 and len(result.failures) == 3
    rows = read_rows(out)
    alone = {k: {"codes": tok.encode_file(r["source_path"]).codes[0].numpy()} for k, r in rows.items()}
    assert_same_codes(tok, rows, alone)


def test_reading_ahead_or_between_passes_writes_the_same_dataset(tiny_ckpt, corpus, clean, tok, tmp_path,
                                                                  monkeypatch):
    """On the CPU each window is read between forward passes by default; reading ahead (a thread, one window ahead)
    writes the very same rows and failures, and both give the clean run's codes (made under other torch threads:
    near ties aside)."""
    from speechtok.pretokenize import reading as module

    between = []
    read_between = module.read_between
    monkeypatch.setattr(module, "read_between", lambda *a: between.append(a[-1]) or read_between(*a))
    pretokenize(tiny_ckpt, corpus, tmp_path / "default", **SMALL)
    assert between == [torch.get_num_threads()]
    pretokenize(tiny_ckpt, corpus, tmp_path / "ahead", read_ahead=True, **SMALL)
    assert len(between) == 1
    rows, ahead = read_rows(tmp_path / "default"), read_rows(tmp_path / "ahead")
    assert sorted(rows) == sorted(ahead) and all(rows[k]["codes"] == ahead[k]["codes"] for k in rows)
    assert read_failures(tmp_path / "default") == read_failures(tmp_path / "ahead") == read_failures(clean)
    assert_same_codes(tok, rows, read_rows(clean))
    # how files are read is no part of the dataset's identity: a rerun that reads ahead resumes, not refused
    assert pretokenize(tiny_ckpt, corpus, tmp_path / "default", read_ahead=True, **SMALL).shards_written == 0


def test_threads_read_a_window_in_order(corpus):
    """Several reader threads give the window one thread gives: same items, batches and padded audio."""
    from speechtok.pretokenize.batching import Bucketer
    from speechtok.pretokenize.reading import AudioFiles, read_between

    paths = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    files, bucketer = AudioFiles(paths, 16000), Bucketer(16000, 320, max_samples=40000, max_items=4)
    windows = [list(range(0, 8)), list(range(8, len(paths)))]
    one, three = (list(read_between(files, bucketer, windows, n)) for n in (1, 3))
    assert [w.indices for w in three] == windows
    for a, b in zip(one, three):
        assert a.failures == b.failures and len(a.batches) == len(b.batches) > 1
        for x, y in zip(a.batches, b.batches):
            assert x.indices == y.indices and torch.equal(x.wav, y.wav) and torch.equal(x.lengths, y.lengths)


def test_bad_files_are_listed_and_skipped(tiny_ckpt, corpus, clean, tmp_path, caplog):
    from speechtok.cli import main

    failures = read_failures(clean)
    assert [f[0] for f in failures] == list(BAD_IDS)
    assert [f[1] for f in failures] == [str(corpus / name) for name in BAD]
    assert "unreadable" in failures[0][2] and "empty" in failures[1][2] and "too short" in failures[2][2]
    assert all(str(corpus) not in f[2] for f in failures[1:])  # the path has its own column

    out = tmp_path / "ds"
    args = ["pretokenize", str(tiny_ckpt), str(corpus), "-o", str(out), "--no-progress", "--num-workers", "0"]
    assert main(args) == 0  # completed: skipped files do not fail the run
    lines = [r.getMessage() for r in caplog.records]
    skipped = sorted(line for line in lines if line.startswith("skipped "))
    assert len(skipped) == 3 and all(line.startswith(f"skipped {corpus / name}: ") and "\n" not in line
                                     for line, name in zip(skipped, BAD))
    assert any(line.startswith("pretokenized 11 files") for line in lines)
    assert any(line.startswith("3 files skipped") for line in lines)
    assert len(read_rows(out)) == 11 and len(read_failures(out)) == 3
    caplog.clear()
    assert main([*args, "--strict"]) == 1  # a rerun: nothing left to do; --strict counts the listed failures
    assert any("0 shards written, 1 already there" in r.getMessage() for r in caplog.records)


# -- resume and parts ------------------------------------------------------------------------------------------

# Writes every shard's temp file, then waits before renaming it: killed in that wait, a run leaves whole shards,
# a temp file and missing shards, as a run killed at a random moment does.
SLOW_WRITER = """
import sys, time
import speechtok.pretokenize.shards as p
write = p._write_parquet
def slow(table, path):
    write(table, path)
    time.sleep(0.3)
p._write_parquet = slow
from speechtok.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli(*args: object, code: str | None = None) -> subprocess.Popen:
    """`python -m speechtok.cli ARGS` (or `python -c CODE ARGS`), one torch thread like the tests in-process."""
    head = ["-c", code] if code else ["-m", "speechtok.cli"]
    return subprocess.Popen([sys.executable, *head, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_killed_run_resumes_without_duplicates_or_gaps(tiny_ckpt, corpus, clean, tok, tmp_path):
    out = tmp_path / "ds"
    args = ["pretokenize", tiny_ckpt, corpus, "-o", out, "--no-progress", "--shard-size", 2, "--bucket-size", 2,
            "--num-workers", 0]
    proc = cli(*args, code=SLOW_WRITER)
    deadline = time.monotonic() + 90
    while not ((out / "part-00000-00001.parquet").exists() and list(out.glob(".part-*.tmp"))):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = sorted(p.name for p in out.glob("part-*.parquet"))
    assert 2 <= len(written) < 7 and list(out.glob(".part-*.tmp"))  # killed mid-run, in a shard's write

    result = pretokenize(tiny_ckpt, corpus, out, **SMALL)  # the same run again
    assert result.shards_skipped == len(written) and result.shards_written == 7 - len(written)
    assert no_temps(out)
    assert_same_codes(tok, read_rows(out), read_rows(clean))
    assert read_failures(out) == read_failures(clean)  # each bad file listed once
    assert pretokenize(tiny_ckpt, corpus, out, **SMALL).shards_written == 0  # done is done


def test_two_processes_write_the_dataset_of_one(tiny_ckpt, corpus, clean, tok, tmp_path):
    """Part 1 in a `speechtok pretokenize` process (reading ahead) while part 0 runs here, at the same time, into
    one directory."""
    out = tmp_path / "ds"
    proc = cli("pretokenize", tiny_ckpt, corpus, "-o", out, "--no-progress", "--shard-size", 2, "--bucket-size", 2,
               "--num-workers", 0, "--read-ahead", "--num-parts", 2, "--part", 1)
    here = pretokenize(tiny_ckpt, corpus, out, num_parts=2, part=0, **SMALL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (here.part, here.num_parts, here.num_items) == (0, 2, 7)
    assert {p.name[:10] for p in out.glob("part-*.parquet")} == {"part-00000", "part-00001"}
    assert_same_codes(tok, read_rows(out), read_rows(clean))
    assert sorted(read_failures(out)) == sorted(read_failures(clean))
    assert no_temps(out)


def test_torchrun_rank_and_world_size_choose_the_part(tiny_ckpt, corpus, clean, monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    out = tmp_path / "ds"
    result = pretokenize(tiny_ckpt, corpus, out, **SMALL)
    assert (result.part, result.num_parts) == (1, 3)
    items = collect_inputs(corpus)
    ids = item_ids([it.path for it in items])
    assert sorted(read_rows(out)) == sorted(i for i in ids[1::3] if i not in BAD_IDS)
    assert {p.name[:10] for p in out.glob("part-*.parquet")} == {"part-00001"}
    monkeypatch.setenv("WORLD_SIZE", "2")  # a rerun under another world size would mix two splits
    with pytest.raises(PretokenizeError, match="num_parts 3 -> 2"):
        pretokenize(tiny_ckpt, corpus, out, **SMALL)


def test_split_is_disjoint_and_complete():
    for n in (0, 1, 7, 10):
        for parts in (1, 2, 3):
            got = [split_part(n, parts, k) for k in range(parts)]
            assert sorted(sum(got, [])) == list(range(n))
    with pytest.raises(ValueError):
        split_part(5, 2, 2)


# -- refusals, options and inputs ------------------------------------------------------------------------------


def test_a_directory_holds_one_tokenizer(tiny_ckpt, corpus, tmp_path):
    out = tmp_path / "ds"
    pretokenize(tiny_ckpt, [corpus / "u00.wav", corpus / "u01.wav"], out, **SMALL)
    with pytest.raises(PretokenizeError, match="config"):  # another architecture
        pretokenize(build_codec(tiny_config(decay=0.9)), [corpus / "u00.wav", corpus / "u01.wav"], out, **SMALL)
    with pytest.raises(PretokenizeError, match="other weights"):  # the same architecture, other weights
        pretokenize(build_codec(tiny_config()), [corpus / "u00.wav", corpus / "u01.wav"], out, **SMALL)
    with pytest.raises(PretokenizeError, match="num_codebooks"):
        pretokenize(tiny_ckpt, [corpus / "u00.wav", corpus / "u01.wav"], out, n_q=4, **SMALL)
    with pytest.raises(PretokenizeError, match="inputs_hash"):
        pretokenize(tiny_ckpt, [corpus / "u01.wav"], out, **SMALL)
    assert isinstance(PretokenizeError("x"), SpeechtokError)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "part-00000-00000.parquet").write_bytes(b"")
    with pytest.raises(PretokenizeError, match="no .meta.json"):
        pretokenize(tiny_ckpt, corpus, stray, **SMALL)


def test_a_shard_of_failures_is_done(tiny_ckpt, corpus, tmp_path):
    """A shard whose files all failed has no Parquet file; its failures sidecar marks it done."""
    inputs = [corpus / BAD[0], corpus / BAD[1], corpus / "u00.wav"]
    first = pretokenize(tiny_ckpt, inputs, tmp_path / "ds", **SMALL)
    assert (first.shards_written, first.rows, len(first.failures)) == (2, 1, 2)
    assert [p.name for p in (tmp_path / "ds").glob("part-*")] == ["part-00000-00001.parquet"]
    again = pretokenize(tiny_ckpt, inputs, tmp_path / "ds", **SMALL)
    assert (again.shards_skipped, again.shards_written, again.failures) == (2, 0, [])
    assert len(read_failures(tmp_path / "ds")) == 2


def test_dedup_and_n_q(tiny_ckpt, corpus, tmp_path):
    out = tmp_path / "ds"
    pretokenize(tiny_ckpt, [corpus / "u02.wav", corpus / "u05.wav"], out, n_q=1, dedup=True, **SMALL)
    table = pyarrow.dataset.dataset(out, format="parquet").to_table()
    assert table.column_names[-2:] == ["units", "durations"]
    for row in table.to_pylist():
        codes, units, durations = (np.asarray(row[k]) for k in ("codes", "units", "durations"))
        assert codes.shape[0] == 1 and durations.sum() == row["num_frames"]
        np.testing.assert_array_equal(np.repeat(units, durations, axis=1), codes)
        assert (units[:, 1:] != units[:, :-1]).any(axis=0).all()  # no two neighbouring units equal
    units, durations = run_lengths(np.array([[1, 1, 2, 2, 2, 1], [5, 5, 5, 5, 6, 6]]))
    np.testing.assert_array_equal(units, [[1, 2, 2, 1], [5, 5, 6, 6]])
    np.testing.assert_array_equal(durations, [2, 2, 1, 1])


def test_manifests_and_file_lists(corpus, tmp_path, tiny_ckpt):
    rows = "".join(f"{corpus.name}/u{k:02d}.wav\t{'train' if k % 2 else 'dev'}\n" for k in range(4))
    (tmp_path / "m.tsv").write_text("path\tsplit\n" + rows)
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": str(corpus / "u09.wav"), "split": "train"}) + "\n")
    items = collect_inputs([tmp_path / "m.tsv", tmp_path / "m.jsonl", corpus / "u01.wav"], root=corpus.parent,
                           splits=["train"])
    assert [it.path.name for it in items] == ["u01.wav", "u03.wav", "u09.wav"]  # u01 twice: kept once
    result = pretokenize(tiny_ckpt, [tmp_path / "m.jsonl", corpus / "sub"], tmp_path / "ds", **SMALL)
    assert result.rows == 2
    assert item_ids([Path("/d/a/x.wav"), Path("/d/b/x.flac"), Path("/d/b/x.wav")]) == ["a/x", "b/x.flac", "b/x.wav"]
    with pytest.raises(PretokenizeError, match="no audio files"):
        pretokenize(tiny_ckpt, [tmp_path / "m.tsv"], tmp_path / "ds2", splits=["test"], root=corpus.parent)


def test_batch_seconds_default_follows_the_device(tiny_ckpt, corpus, tmp_path):
    assert default_batch_seconds("cpu") == 50 and default_batch_seconds("cuda:1") == 200
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="batch_seconds"):
            pretokenize(tiny_ckpt, [corpus / "u00.wav"], tmp_path / "ds", batch_seconds=bad, **SMALL)


def test_bucket_sorts_and_bounds_batches():
    lengths = [5, 100, 7, 50, 60, 6, 300, 95, 58]
    batches = bucket(lengths, max_samples=200, max_items=2, max_padding=0.1)
    assert sorted(sum(batches, [])) == list(range(len(lengths)))
    assert batches[0] == [6]  # longer than the budget: alone
    for b in batches:
        sizes = [lengths[i] for i in b]
        assert sizes == sorted(sizes, reverse=True) and len(b) <= 2
        assert len(b) == 1 or (len(b) * sizes[0] <= 200 and sum(sizes) >= 0.9 * len(b) * sizes[0])
    assert [1, 7] in batches and [4, 8] in batches  # 100 + 95, 60 + 58: close lengths share a batch
    assert [3] in batches  # 50 would pad (50, 7) by 43%


def test_package_attribute_is_callable_after_the_module_import(tiny_ckpt, corpus, tmp_path):
    import speechtok.pretokenize  # noqa: F401 - binds the package attribute to the module

    result = speechtok.pretokenize(tiny_ckpt, [corpus / "u00.wav"], tmp_path / "ds", **SMALL)
    assert result.rows == 1


def test_a_window_crosses_from_a_worker_as_one_buffer():
    """Batches leave a DataLoader worker as views of one shared buffer (one handle to fetch per window, not two
    per batch) and arrive equal, still views of that buffer."""
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401 - registers the shared-memory reductions of tensors

    from speechtok.pretokenize.batching import Bucketer, Loaded

    gen = torch.Generator().manual_seed(0)
    loaded = [Loaded(i, torch.randn(n, generator=gen), n / 16000) for i, n in enumerate([5000, 9000, 6400, 700])]
    window = Bucketer(16000, 320, max_samples=20000, max_items=2)(loaded)
    assert len(window.batches) >= 2
    tensors = []
    pickler_reduce = ForkingPickler._extra_reducers[torch.Tensor]

    class Counting(ForkingPickler):
        pass

    Counting._extra_reducers = {**ForkingPickler._extra_reducers,
                                torch.Tensor: lambda t: (tensors.append(t), pickler_reduce(t))[1]}
    back = pickle.loads(Counting.dumps(window))
    assert len(tensors) == 1  # the window's buffer alone
    for sent, got in zip(window.batches, back.batches):
        assert got.indices == sent.indices and got.durations == sent.durations
        assert torch.equal(got.wav, sent.wav) and torch.equal(got.lengths, sent.lengths)
        assert got.wav.untyped_storage().data_ptr() == back.audio.untyped_storage().data_ptr()


def test_the_bucketer_skips_what_the_tokenizer_cannot_encode():
    """Items shorter than the encoder's one frame fail in the bucketer with the tokenizer's own message (HuBERT's
    400-sample window, not one 320-sample hop), so no batch is tried on them."""
    from speechtok.pretokenize.batching import Bucketer, Loaded

    loaded = [Loaded(i, torch.zeros(n), n / 16000) for i, n in enumerate([350, 400, 319])]
    window = Bucketer(16000, 320, max_samples=20000, max_items=4, min_samples=400, frame_name="HuBERT frame")(loaded)
    assert [i for b in window.batches for i in b.indices] == [1]
    assert dict(window.failures) == {0: "audio too short: 350 samples at 16000 Hz; one HuBERT frame needs 400 (25 ms)",
                                     2: "audio too short: 319 samples at 16000 Hz; one HuBERT frame needs 400 (25 ms)"}
    codec = Bucketer(16000, 320, max_samples=20000, max_items=4)(loaded)  # a codec: one hop
    assert [i for b in codec.batches for i in sorted(b.indices)] == [0, 1] and [i for i, _ in codec.failures] == [2]
