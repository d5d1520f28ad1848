"""Pre-tokenize a corpus into a directory of Parquet shards (DESIGN.md, "File formats"): fast, resumable, sharded.

    speechtok.pretokenize("speechtok-codec-16k", "corpus/", "codes/")            # or: speechtok pretokenize ...
    pandas.read_parquet("codes/")                                               # no speechtok needed to read it

Layout of `out_dir` (every name but the shards starts with `.`: pyarrow, pandas and Hugging Face `datasets`
skip those; `datasets` reads `_`-prefixed files as data, so there are none; polars reads `out_dir/*.parquet`):

    part-<part>-<n>.parquet        rows: id, codes list<list<int16>> [Q][T] (int32 past 32767 codes),
                                   num_frames, duration_s, source_path (+ units, durations with `dedup`;
                                   + segment_scales list<float32> for segmented codecs: the 48 kHz EnCodec;
                                   + input_ids list<int32> with `lm`, input_durations for its units pattern)
    .vocab.json                    with `lm`: the vocabulary of input_ids (`speechtok.lm.LMVocab.load`)
    .meta.json                     tokenizer identity, config and weights hashes, rates, codebooks, device, dtype,
                                   speechtok version, and the layout (parts, shard size, inputs) a rerun must match
    .failures.tsv                  id, path, error of every file that was skipped
    .part-<part>-<n>.failures.tsv  the failures of one shard (`.failures.tsv` is rebuilt from them)
    .part-*.tmp, .lock             shards being written; the lock that serialises `.meta.json` / `.failures.tsv`

Order, and why a rerun resumes: the items (inputs in the order given; a directory sorted, a manifest in its
order; duplicates dropped) are split into `num_parts` disjoint parts, part k taking items k, k + N, k + 2N, ...;
part k's items are cut into shards of `shard_size` consecutive items, numbered from 0. A shard is written to a
temp name and renamed, so it exists whole or not at all, and a rerun redoes exactly the shards that do not exist
(a shard whose items all failed is done when its failures sidecar lists all of them). `.meta.json` pins the
tokenizer (config and weights), `n_q`, `dtype`, `num_parts`, `shard_size` and a hash of the item list, so a rerun
that would change which item goes to which shard is refused instead of writing duplicates or gaps.

Speed: files are read, downmixed and resampled a window at a time (`bucket_size` consecutive items of a shard),
sorted by length and cut into padded batches of at most `batch_seconds` of padded audio, `max_batch_size` items
and 10% padding, with per-item lengths, so that each item gets the codes it gets alone (`Tokenizer.encode(...,
lengths=)`; DESIGN.md, "Invariance"). Files longer than the tokenizer's `chunk_seconds` are encoded in
overlapping chunks by the core, so activations stay bounded; the waveform itself is read whole. Where the windows
are read depends on what runs the model (`read_ahead` overrides it):
- on a GPU, DataLoader worker processes read ahead while it encodes (`num_workers=0`: a thread, one window
  ahead). Before forking the workers the heap's free pages go back to the OS: a process warm from earlier forward
  passes would otherwise share GBs with them copy-on-write, and its next passes would copy every page they reuse
  (2 workers ran 1.5x slower after a warm-up run in the same process);
- on the CPU, reading and the model need the same cores, and a reader that preempts one of torch's threads stalls
  the others at their next barrier: each window is read between forward passes instead, by as many threads as
  torch uses (decoding and resampling release the GIL). On 2 cores this took the time over the pure forward from
  +20% / +26% (2 worker processes / a thread, reading ahead) to +14% (`benchmarks/pretokenize.py`, medians).

Bad files (unreadable, empty, shorter than one frame, NaN, truncated unless `allow_truncated`; with
`skip_missing`, a manifest's missing files) are logged in one line, listed in `.failures.tsv` and skipped; the run
goes on. Errors that are not the file's fault (out of memory, a broken model) stop the run; the rerun resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import time
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from . import __version__, audio
from .codes import storage_dtype
from .errors import SpeechtokError, one_line
from .fileio import atomic_path, write_text
from .lm import LMVocab, get_pattern
from .manifest import MANIFEST_SUFFIXES, Item, MissingFilesError, read_manifest
from .prefetch import prefetch
from .runtime import release_free_memory
from .tokenizer import Tokenizer, weights_hash
from .training.data import DataConfig, collect_items

__all__ = ["pretokenize", "PretokenizeResult", "Failure", "PretokenizeError", "collect_inputs", "item_ids",
           "split_part", "bucket", "run_lengths", "weights_hash", "default_batch_seconds"]

log = logging.getLogger(__name__)

FORMAT = "speechtok-pretokenized"
FORMAT_VERSION = 1
META_NAME = ".meta.json"
VOCAB_NAME = ".vocab.json"  # with `lm`: the vocabulary of `input_ids` (speechtok.lm.LMVocab.load reads it)
FAILURES_NAME = ".failures.tsv"
FAILURES_HEADER = "id\tpath\terror"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAX_PADDING = 0.1  # of a batch's padded samples, at most (bucket)
# Padded audio per batch: a GPU wants large batches. On a CPU 50 s encode as fast as 200 s, and glibc's heap (kept
# whole by runtime.tune_malloc) fragments far less: 1.7 against 10.1 GB resident, 0.4 against 2.5 M page faults,
# 37.6 against 41.2 s end to end (the default codec, 1.24 h of audio, 2 cores)
BATCH_SECONDS = {"cuda": 200.0, "cpu": 50.0}
# what a resumed run must share with the run that started the directory
_LAYOUT_KEYS = ("format_version", "config_hash", "num_codebooks", "dtype", "dedup", "num_parts", "shard_size",
                "num_items", "inputs_hash", "lm")


class PretokenizeError(SpeechtokError):
    """An output directory that cannot take this run (another tokenizer, another split, not writable), or inputs
    that cannot be listed (a missing manifest, missing listed files)."""


class MissingInputsError(PretokenizeError):
    """A manifest lists files that do not exist. `what` says how many and the first, without the hint, so that
    the CLI can name its own flags (--root, --skip-missing) where the message names Python's."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; pass root= or skip_missing=True")
        self.what = what


@dataclass(frozen=True)
class Failure:
    """A file that was skipped, and why (one line)."""

    id: str
    path: str
    error: str


@dataclass
class PretokenizeResult:
    """What one call did for its part. Counts are of this call: shards and rows a previous run wrote are
    `shards_skipped`, not `shards_written`."""

    out_dir: Path
    part: int
    num_parts: int
    num_items: int  # items of this part
    num_shards: int  # shards of this part
    shards_written: int
    shards_skipped: int  # already complete, from an earlier run
    rows: int  # rows written by this call
    failures: list[Failure]  # files this call skipped
    audio_seconds: float  # of the rows written by this call
    wall_seconds: float
    num_failed: int = 0  # files of this part skipped, by this call or an earlier one (its failures sidecars)

    @property
    def realtime_factor(self) -> float:
        """Audio seconds encoded per wall second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


# -- the item list -----------------------------------------------------------------------------------------------


def collect_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike], root: str | os.PathLike | None = None,
                   splits: Sequence[str] = (), skip_missing: bool = False) -> list[Item]:
    """Items of directories (scanned recursively), manifests (`.tsv`, `.jsonl`, read by `training.data`) and
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
    cfg = DataConfig(sources=(str(path),), root=None if root is None else str(root), splits=tuple(splits),
                     min_seconds=0)
    return collect_items(cfg)


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


# -- batching (pure) ---------------------------------------------------------------------------------------------


def bucket(lengths: Sequence[int], max_samples: int, max_items: int, max_padding: float = MAX_PADDING
           ) -> list[list[int]]:
    """Positions of `lengths` grouped into batches, longest first. The next (shorter) item joins the current batch
    while the batch stays within `max_items` items, `max_samples` padded samples (items x its longest) and
    `max_padding` of padding (the fraction of the padded batch that is not audio); an item longer than
    `max_samples` is a batch alone."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    total = 0  # samples of audio in the current batch
    for i in order:
        if batches:
            n, longest = len(batches[-1]) + 1, lengths[batches[-1][0]]
            if n <= max_items and n * longest <= max_samples and total + lengths[i] >= (1 - max_padding) * n * longest:
                batches[-1].append(i)
                total += lengths[i]
                continue
        batches.append([i])
        total = lengths[i]
    return batches


def run_lengths(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """codes [Q, T] -> (units [Q, U], durations [U]): runs of frames equal on every codebook, kept once, with the
    number of frames of each run; `np.repeat(units, durations, axis=1)` gives `codes` back."""
    if codes.shape[-1] == 0:
        return codes, np.zeros(0, np.int32)
    change = (codes[:, 1:] != codes[:, :-1]).any(axis=0)
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    durations = np.diff(np.concatenate([starts, [codes.shape[-1]]])).astype(np.int32)
    return codes[:, starts], durations


# -- reading in workers ------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    index: int  # in the part's item list
    wav: Tensor | None  # [T] mono float32 at the tokenizer's rate; None when it failed
    duration_s: float  # of the file as stored
    error: str | None = None


@dataclass
class _Batch:
    indices: list[int]
    wav: Tensor  # [B, 1, T] float32, zero past each item's length, T a whole number of frames
    lengths: Tensor  # [B] valid samples at the tokenizer's rate
    durations: list[float]


@dataclass
class _Window:
    """`bucket_size` consecutive items of one shard, read, resampled and cut into padded batches, whose audio are
    views of one buffer `audio`."""

    indices: list[int]
    batches: list[_Batch]
    failures: list[tuple[int, str]]
    audio: Tensor  # [N] float32: every batch's samples

    def __reduce__(self):
        # From a worker, each tensor costs a shared-memory handle that the receiver fetches over its own socket
        # connection (~15 ms); one buffer per window, not two tensors per batch, keeps that off the critical path
        specs = [(b.indices, b.wav.storage_offset(), tuple(b.wav.shape), b.lengths.tolist(), b.durations)
                 for b in self.batches]
        return _Window.rebuild, (self.indices, specs, self.failures, self.audio)

    @staticmethod
    def rebuild(indices: list[int], specs: list[tuple], failures: list[tuple[int, str]], audio: Tensor) -> _Window:
        batches = [_Batch(ids, _view(audio, offset, shape), torch.tensor(lengths), durations)
                   for ids, offset, shape, lengths, durations in specs]
        return _Window(indices, batches, failures, audio)

    def pin_memory(self) -> _Window:  # DataLoader(pin_memory=True) calls this
        pinned = self.audio.pin_memory()
        for b in self.batches:
            b.wav = _view(pinned, b.wav.storage_offset() - self.audio.storage_offset(), tuple(b.wav.shape))
        self.audio = pinned
        return self


def _view(audio: Tensor, offset: int, shape: tuple[int, ...]) -> Tensor:
    """The contiguous [B, C, T] block of `audio` that starts `offset` elements into its storage."""
    _, c, t = shape
    return audio.as_strided(shape, (c * t, t, 1), offset)


class _AudioFiles(Dataset):
    """files[i] -> `_Loaded`: read, downmixed, resampled; any error is caught and returned (a bad file is the
    file's problem, not the run's)."""

    def __init__(self, paths: Sequence[str], sample_rate: int, allow_truncated: bool = False) -> None:
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.allow_truncated = allow_truncated

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> _Loaded:
        path = self.paths[index]
        try:
            wav, sr = audio.read(path, allow_truncated=self.allow_truncated)  # [C, T]
            mono = audio.prepare(wav, sr, self.sample_rate, source=path)[0, 0]  # [T]
            return _Loaded(index, mono, wav.shape[-1] / sr)
        except Exception as e:  # noqa: BLE001 - whatever a file does to the reader, it is skipped
            return _Loaded(index, None, 0.0, _one_line(e, path))


class _Bucketer:
    """collate_fn: a window of `_Loaded` -> `_Window` of padded batches (runs in the worker)."""

    def __init__(self, sample_rate: int, hop_length: int, max_samples: int, max_items: int) -> None:
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.max_samples, self.max_items = max_samples, max_items

    def __call__(self, loaded: list[_Loaded]) -> _Window:
        failures, good = [], []
        for item in loaded:
            if item.wav is None:
                failures.append((item.index, item.error or "unreadable"))
            elif item.wav.numel() < self.hop_length:  # Tokenizer.encode's own limit, checked per item
                failures.append((item.index, f"audio too short: {item.wav.numel()} samples at {self.sample_rate} "
                                             f"Hz; one frame needs {self.hop_length}"))
            else:
                good.append(item)
        groups = bucket([g.wav.numel() for g in good], self.max_samples, self.max_items)
        shapes = [(len(group), 1, -(-max(good[i].wav.numel() for i in group) // self.hop_length) * self.hop_length)
                  for group in groups]
        # whole frames (encode need not copy them), in one buffer (see _Window.__reduce__); numpy, as
        # audio.prepare, keeps torch's threads out of it
        flat = np.zeros(sum(b * t for b, _, t in shapes), np.float32)
        audio, batches, offset = torch.from_numpy(flat), [], 0
        for group, shape in zip(groups, shapes):
            members = [good[i] for i in group]
            wav = flat[offset : offset + shape[0] * shape[2]].reshape(shape)
            for row, m in enumerate(members):
                wav[row, 0, : m.wav.numel()] = m.wav.numpy()
            batches.append(_Batch([m.index for m in members], _view(audio, offset, shape),
                                  torch.tensor([m.wav.numel() for m in members]), [m.duration_s for m in members]))
            offset += wav.size
        return _Window([item.index for item in loaded], batches, failures, audio)


# -- the run -----------------------------------------------------------------------------------------------------


@dataclass
class _Shard:
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


def _make_shards(ids: Sequence[str], paths: Sequence[str | os.PathLike], positions: Sequence[int],
                shard_size: int) -> list[_Shard]:
    """A part's shards: `shard_size` consecutive items of `positions` (indices into `ids` / `paths`) each."""
    shards = []
    for n, a in enumerate(range(0, len(positions), shard_size)):
        chunk = positions[a : a + shard_size]
        shards.append(_Shard(n, a, [ids[k] for k in chunk], [str(paths[k]) for k in chunk]))
    return shards


def pretokenize(tokenizer: Tokenizer | str | os.PathLike, inputs: str | os.PathLike | Sequence[str | os.PathLike],
                out_dir: str | os.PathLike, *, n_q: int | None = None, num_parts: int | None = None,
                part: int | None = None, shard_size: int = 1000, batch_seconds: float | None = None,
                max_batch_size: int = 64, bucket_size: int = 128, num_workers: int = 2,
                read_ahead: bool | None = None, device: str | torch.device | None = None, dtype: str = "float32",
                root: str | os.PathLike | None = None, splits: Sequence[str] = (), skip_missing: bool = False,
                dedup: bool = False, allow_truncated: bool = False, progress: bool = False,
                lm: str | None = None) -> PretokenizeResult:
    """Encode every audio file of `inputs` with `tokenizer` into Parquet shards in `out_dir` (see the module doc).

    tokenizer: a Tokenizer (put in eval mode), or a name / checkpoint directory for `speechtok.load`.
    inputs: a directory (scanned recursively), a manifest (`.tsv`, `.jsonl`; `root`, `splits` and `skip_missing`
        as in `training.data.read_manifest`), an audio file, or a list of them.
    n_q: codebooks to keep (default all). dedup: also store `units` [Q][U] and `durations` [U], the runs of
        frames equal on every codebook (for unit streams of semantic tokenizers).
    num_parts, part: do part `part` of `num_parts` disjoint parts; default torchrun's WORLD_SIZE / RANK, else 1, 0.
    shard_size: items per shard (what a killed run loses at most). bucket_size: consecutive items of a shard read
        together and sorted by length into batches of at most `batch_seconds` of padded audio, `max_batch_size`
        items and 10% padding (`bucket`); the larger, the fewer and fuller the batches, and the more audio each
        worker holds. batch_seconds defaults to `BATCH_SECONDS` of the device (200 on CUDA, 50 on CPU).
    num_workers, read_ahead: with `read_ahead`, `num_workers` DataLoader worker processes read the next windows
        while the model encodes (0: a thread of this process, one window ahead). `read_ahead` defaults to True on
        accelerators; on the CPU each window is read between forward passes by as many threads as torch uses,
        and `num_workers` is not used.
    device: default CUDA when there is one, else CPU; "cuda" means `cuda:LOCAL_RANK` (torchrun's); a given
        Tokenizer stays on its device unless `device` is given.
    dtype: float32, or bfloat16 / float16 under autocast (recorded in `.meta.json`).
    allow_truncated: encode what a file shorter than its header says holds (default: it is a failure).
    lm: an LM pattern (`speechtok.lm.PATTERNS`: flatten, delay, semantic_first, parallel, units): also store each
        row's `input_ids` (list<int32>; [Q][T] for parallel) in one vocabulary written to `.vocab.json`, and for
        units their `input_durations`.
    progress: a tqdm bar on stderr (files, hours of audio, hours of audio per second, ETA).

    Raises PretokenizeError when `out_dir` was started by another tokenizer or layout or cannot be written, or
    inputs cannot be listed (MissingInputsError: a manifest's missing files); a bad audio file is a `Failure`,
    not an exception.
    """
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    bad_seconds = batch_seconds is not None and batch_seconds <= 0
    if min(shard_size, bucket_size, max_batch_size) < 1 or bad_seconds or num_workers < 0:
        raise ValueError("shard_size, bucket_size, max_batch_size and batch_seconds must be positive, "
                         "num_workers >= 0")
    num_parts, part = resolve_part(num_parts, part)
    tok = _tokenizer(tokenizer, device)
    batch_seconds = default_batch_seconds(tok.device) if batch_seconds is None else batch_seconds
    read_ahead = tok.device.type != "cpu" if read_ahead is None else read_ahead
    n_q = tok._check_n_q(n_q)
    out = Path(out_dir)

    items = collect_inputs(inputs, root, splits, skip_missing)
    if not items:
        raise PretokenizeError(f"no audio files in {_describe(inputs)}")
    paths = [it.path for it in items]
    ids = manifest_or_path_ids(items)
    meta = _meta(tok, n_q, dtype, dedup, num_parts, shard_size, len(items), inputs_hash(ids, paths), lm)
    code_dtype = torch.int16 if storage_dtype(tok.codebook_size) is np.int16 else torch.int32

    mine = split_part(len(items), num_parts, part)  # positions in `items`
    shards = _make_shards(ids, paths, mine, shard_size)
    _make_dir(out)
    with _locked(out):
        _claim(out, meta)
        if lm is not None:
            LMVocab.from_dict(meta["lm"]["vocab"]).save(out / VOCAB_NAME)
    part_lock = _own_part(out, part, num_parts)  # held until closed below (or collected, on an error before)
    _remove_stale_temps(out, part)
    todo = [s for s in shards if not _shard_done(out, part, s)]

    result = PretokenizeResult(out, part, num_parts, len(mine), len(shards), 0, len(shards) - len(todo), 0, [],
                               0.0, 0.0)
    bar = _Progress(len(mine), len(mine) - sum(len(s.ids) for s in todo), part, num_parts, t0) if progress else None
    try:
        for shard, window in _windows(tok, todo, [str(paths[k]) for k in mine], bucket_size, batch_seconds,
                                      max_batch_size, num_workers, read_ahead, allow_truncated):
            for index, error in window.failures:
                shard.skip(index, error)
            for batch in window.batches:
                for index, codes, duration, scales in _encode(tok, batch, n_q, dtype, code_dtype):
                    if isinstance(codes, str):
                        shard.skip(index, codes)
                    else:
                        shard.rows[index] = (codes, duration, scales)
            shard.windows_left -= 1
            if shard.windows_left == 0:
                rows, failures = shard.take()
                _write_shard(out, part, shard.number, rows, failures, meta, dedup)
                result.shards_written += 1
                result.rows += len(rows)
                result.audio_seconds += sum(r[3] for r in rows)
                result.failures += failures
            if bar is not None:
                bar.update(len(window.indices), sum(d for b in window.batches for d in b.durations))
    finally:
        if bar is not None:
            bar.close()
        with _locked(out):
            _rebuild_failures(out)
        if part_lock is not None:
            part_lock.close()
    result.num_failed = sum(len(_read_failures(p)) for p in out.glob(f".part-{part:05d}-*.failures.tsv"))
    result.wall_seconds = time.perf_counter() - t0
    return result


def _windows(tok: Tokenizer, shards: list[_Shard], paths: list[str], bucket_size: int, batch_seconds: float,
             max_batch_size: int, num_workers: int, read_ahead: bool, allow_truncated: bool = False
             ) -> Iterator[tuple[_Shard, _Window]]:
    """(shard, window) for every window of `bucket_size` consecutive items of each shard, in order, read and
    batched ahead by DataLoader workers, or between forward passes (see the module doc). Sets each shard's
    `windows_left`."""
    windows: list[list[int]] = []
    owner: list[_Shard] = []
    for shard in shards:
        chunks = [list(shard.indices[a : a + bucket_size]) for a in range(0, len(shard.ids), bucket_size)]
        shard.windows_left = len(chunks)
        windows += chunks
        owner += [shard] * len(chunks)
    if not windows:
        return
    files = _AudioFiles(paths, tok.sample_rate, allow_truncated)
    bucketer = _Bucketer(tok.sample_rate, tok.hop_length, int(batch_seconds * tok.sample_rate), max_batch_size)
    if not read_ahead:
        yield from zip(owner, _read_between(files, bucketer, windows, torch.get_num_threads()))
        return
    loader = DataLoader(files, batch_sampler=windows, num_workers=num_workers, collate_fn=bucketer,
                        pin_memory=tok.device.type == "cuda")
    if num_workers:
        release_free_memory()  # before the fork: the workers must not share a warm heap copy-on-write
    # no workers: read in a thread, one window ahead (decoding and resampling release the GIL)
    yield from zip(owner, loader if num_workers else prefetch(loader))


def _read_between(files: _AudioFiles, bucketer: _Bucketer, windows: list[list[int]], threads: int
                  ) -> Iterator[_Window]:
    """Each window read by `threads` threads when the consumer asks for it, so that reading never competes with
    the consumer's own threads."""
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="speechtok-read")
    try:
        for window in windows:
            yield bucketer(list(pool.map(files.__getitem__, window)))
    finally:  # stopped early (an error, Ctrl-C): the window's files not yet started are not read
        pool.shutdown(cancel_futures=True)


def default_batch_seconds(device: str | torch.device) -> float:
    """Padded seconds of audio per batch on `device` (see `BATCH_SECONDS`; other accelerators as CUDA)."""
    return BATCH_SECONDS["cpu" if torch.device(device).type == "cpu" else "cuda"]


def _tokenizer(tokenizer: Tokenizer | str | os.PathLike, device: str | torch.device | None) -> Tokenizer:
    local_gpu = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # under torchrun each rank on its own GPU
    if str(device) == "cuda":
        device = local_gpu
    if isinstance(tokenizer, Tokenizer):
        return (tokenizer if device is None else tokenizer.to(device)).eval()
    from .registry import load

    if device is None:
        device = local_gpu if torch.cuda.is_available() else "cpu"
    return load(tokenizer, device=device)


def _encode(tok: Tokenizer, batch: _Batch, n_q: int, dtype: str, code_dtype: torch.dtype
            ) -> Iterator[tuple[int, np.ndarray | str, float, np.ndarray | None]]:
    """(index, codes [n_q, T] or the error, duration, segment scales [S] of segmented codecs) of each item of a
    padded batch. If the batch fails with a speechtok error, each item is tried alone, so that only the bad item
    is skipped."""
    autocast = (torch.autocast(tok.device.type, dtype=DTYPES[dtype]) if dtype != "float32"
                else contextlib.nullcontext())
    try:
        with autocast:
            codes = tok.encode(batch.wav, tok.sample_rate, n_q=n_q, lengths=batch.lengths)
    except SpeechtokError as e:
        if len(batch.indices) == 1:
            yield batch.indices[0], _one_line(e), batch.durations[0], None
            return
        for row, index in enumerate(batch.indices):
            n = int(batch.lengths[row])
            yield from _encode(tok, _Batch([index], batch.wav[row : row + 1, :, :n], batch.lengths[row : row + 1],
                                           [batch.durations[row]]), n_q, dtype, code_dtype)
        return
    tokens = codes.codes.to(code_dtype).cpu().numpy()  # [B, n_q, T]
    for row, index in enumerate(batch.indices):
        scales = None if codes.scales is None else codes.item(row).scales[0].numpy()
        yield index, tokens[row, :, : int(codes.lengths[row])], batch.durations[row], scales


# -- files -------------------------------------------------------------------------------------------------------


def shard_name(part: int, number: int) -> str:
    return f"part-{part:05d}-{number:05d}.parquet"


def _failures_sidecar(out: Path, part: int, number: int) -> Path:
    return out / f".part-{part:05d}-{number:05d}.failures.tsv"


def _shard_done(out: Path, part: int, shard: _Shard) -> bool:
    """The shard's Parquet file exists, or its failures sidecar lists every item (nothing to write)."""
    if (out / shard_name(part, shard.number)).is_file():
        return True
    side = _failures_sidecar(out, part, shard.number)
    return side.is_file() and {_unescape(line.split("\t")[0]) for line in _read_failures(side)} == set(shard.ids)


def _write_shard(out: Path, part: int, number: int, rows: list[tuple],
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


def _meta(tok: Tokenizer, n_q: int, dtype: str, dedup: bool, num_parts: int, shard_size: int, num_items: int,
          items_hash: str, lm: str | None = None) -> dict:
    lm_meta = None
    if lm is not None:
        get_pattern(lm)  # an unknown name fails here, before anything is written
        lm_meta = {"pattern": lm, "vocab": LMVocab(n_q, tok.codebook_size, tokenizer=tok.identity()).to_dict()}
    lm_columns = [] if lm is None else ["input_ids"] + (["input_durations"] if lm == "units" else [])
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "speechtok_version": __version__,
        "tokenizer": tok.identity(),
        "config_hash": tok.config_hash,
        "weights_hash": weights_hash(tok),
        "sample_rate": tok.sample_rate,
        "frame_rate": tok.frame_rate,
        "hop_length": tok.hop_length,
        "num_codebooks": n_q,
        "codebook_size": tok.codebook_size,
        "codes_dtype": np.dtype(storage_dtype(tok.codebook_size)).name,
        "device": tok.device.type,
        "dtype": dtype,
        "dedup": dedup,
        "num_parts": num_parts,
        "shard_size": shard_size,
        "num_items": num_items,
        "inputs_hash": items_hash,
        "lm": lm_meta,
        "columns": ["id", "codes", "num_frames", "duration_s", "source_path"] + (["units", "durations"] if dedup
                                                                                else [])
        + (["segment_scales"] if getattr(tok, "segments", None) else []) + lm_columns,
    }


def _claim(out: Path, meta: dict) -> None:
    """Write `.meta.json`, or check that the one there describes this run (same tokenizer and layout)."""
    path = out / META_NAME
    for stale in out.glob(f".{META_NAME}.*.tmp"):  # writers hold the lock: any temp here is a killed writer's
        stale.unlink(missing_ok=True)
    if not path.is_file():
        if any(out.glob("part-*.parquet")):
            raise PretokenizeError(f"{out}: holds Parquet shards but no {META_NAME}; use an empty directory")
        write_text(path, json.dumps(meta, indent=2) + "\n")
        return
    try:
        theirs = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PretokenizeError(f"{path}: unreadable ({e})") from None
    if theirs.get("format") != FORMAT:
        raise PretokenizeError(f"{path}: not a speechtok pre-tokenized dataset")
    if theirs.get("config_hash") != meta["config_hash"]:
        raise PretokenizeError(
            f"{out}: started with tokenizer {theirs.get('tokenizer', {}).get('name')!r} (config "
            f"{theirs.get('config_hash')}); this run uses {meta['tokenizer']['name']!r} (config "
            f"{meta['config_hash']}): one directory holds the codes of one tokenizer; use another directory")
    if theirs.get("weights_hash") != meta["weights_hash"]:
        raise PretokenizeError(
            f"{out}: started with other weights of the same architecture (weights {theirs.get('weights_hash')}, "
            f"now {meta['weights_hash']}): one directory holds the codes of one tokenizer; use another directory")
    changed = [f"{k} {theirs.get(k)!r} -> {meta[k]!r}" for k in _LAYOUT_KEYS if theirs.get(k) != meta[k]]
    if changed:
        raise PretokenizeError(f"{out}: started with other settings or inputs ({'; '.join(changed)}); a resumed run "
                               f"must use the same inputs, n_q, dtype, dedup, num_parts and shard_size, or another "
                               f"directory")
    if theirs.get("device") != meta["device"]:
        log.warning("%s: started on %s, resumed on %s (codes may differ at float near-ties)", out,
                    theirs.get("device"), meta["device"])


def _remove_stale_temps(out: Path, part: int) -> None:
    """Temp files a killed run of this part left (only this part's: other parts may be writing theirs)."""
    for pattern in (f".part-{part:05d}-*.tmp", f"..part-{part:05d}-*.tmp"):
        for stale in out.glob(pattern):
            stale.unlink(missing_ok=True)


def _failures_text(failures: Sequence[Failure]) -> str:
    """One line a failure, whatever its file is called: tabs, newlines and backslashes in the id and the path
    are written as \\t, \\n, \\r and \\\\ (the error is one line already)."""
    return "".join(f"{_escape(f.id)}\t{_escape(f.path)}\t{_tsv_field(f.error)}\n" for f in failures)


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in str(text))


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


def _read_failures(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def _rebuild_failures(out: Path) -> None:
    """`.failures.tsv` = the failures sidecars of every part, in shard order (under the lock)."""
    for stale in out.glob(f".{FAILURES_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)
    lines = [line for side in sorted(out.glob(".part-*.failures.tsv")) for line in _read_failures(side)]
    write_text(out / FAILURES_NAME, "\n".join([FAILURES_HEADER, *lines]) + "\n")


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in the way, a read-only place
        raise PretokenizeError(f"{out}: cannot create the output directory ({one_line(e)})") from None


def _own_part(out: Path, part: int, num_parts: int):
    """An open `out/.part-K.lock` holding an exclusive lock while this part runs (closing it lets go): a second
    run of the same part would delete this one's temp shards as a killed run's. Refused at once, not waited for."""
    try:
        import fcntl
    except ImportError:  # Windows: parts run one at a time there
        return None
    f = open(out / f".part-{part:05d}.lock", "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise PretokenizeError(f"{out}: part {part} of {num_parts} is being written by another pretokenize run; "
                               "wait for it, or give this one another --part") from None
    return f


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """An exclusive lock on `out/.lock` (no-op where fcntl is missing): parts share `.meta.json` and
    `.failures.tsv`."""
    try:
        import fcntl
    except ImportError:  # Windows: parts run one at a time there
        yield
        return
    try:
        f = open(out / ".lock", "a")
    except OSError as e:
        raise PretokenizeError(f"{out}: cannot write in the output directory ({one_line(e)})") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- helpers -----------------------------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar of files with the hours of audio done and hours of audio per second (tqdm gives the ETA)."""

    def __init__(self, total: int, done: int, part: int, num_parts: int, t0: float) -> None:
        from .progress import progress

        desc = "pretokenize" if num_parts == 1 else f"pretokenize part {part}/{num_parts}"
        self.bar = progress(total=total, initial=done, desc=desc, unit="file")  # lines off a terminal
        self.t0, self.audio_seconds = t0, 0.0

    def update(self, files: int, audio_seconds: float) -> None:
        self.audio_seconds += audio_seconds
        wall = max(time.perf_counter() - self.t0, 1e-9)
        hours = self.audio_seconds / 3600
        self.bar.set_postfix_str(f"{hours:.2f} h audio, {hours / wall:.4f} h/s "
                                 f"({self.audio_seconds / wall:.0f}x real time)", refresh=False)
        self.bar.update(files)

    def close(self) -> None:
        self.bar.close()


def _one_line(e: BaseException, source: object = None) -> str:
    text = one_line(e)
    if source is not None and not isinstance(e, SpeechtokError):
        text = f"{type(e).__name__}: {text}"
    return text


def _strip_source(error: str, path: str) -> str:
    """The error without a leading `path: ` (the failures file has a path column)."""
    prefix = f"{path}: "
    return error[len(prefix):] if error.startswith(prefix) else error


def _tsv_field(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def _describe(inputs: Any) -> str:
    return str(inputs) if isinstance(inputs, (str, os.PathLike)) else " ".join(map(str, inputs))


class _CallableModule(types.ModuleType):
    """`speechtok.pretokenize` is this module once it is imported (the import system binds a package's attribute
    to its submodule), and the function before: calling the module calls the function, so both work."""

    def __call__(self, *args: Any, **kwargs: Any) -> PretokenizeResult:
        return pretokenize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
