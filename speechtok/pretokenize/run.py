"""One run of `pretokenize`: claim the output directory (`.meta.json` pins tokenizer and layout), encode the
shards not yet done, write each one whole, and report what was done."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..codes import storage_dtype
from ..errors import SpeechtokError, one_line
from ..fileio import write_text
from ..lm import LMVocab, get_pattern
from ..tokenizer import Tokenizer, weights_hash
from .batching import Batch, default_batch_seconds
from .errors import PretokenizeError, error_line
from .items import collect_inputs, describe, inputs_hash, manifest_or_path_ids, resolve_part, split_part
from .reading import read_windows
from .shards import Failure, make_shards, read_failures, rebuild_failures, shard_done, write_shard

log = logging.getLogger(__name__)


FORMAT = "speechtok-pretokenized"


FORMAT_VERSION = 1


META_NAME = ".meta.json"


VOCAB_NAME = ".vocab.json"  # with `lm`: the vocabulary of `input_ids` (speechtok.lm.LMVocab.load reads it)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


_LAYOUT_KEYS = ("format_version", "config_hash", "num_codebooks", "dtype", "dedup", "num_parts", "shard_size",
                "num_items", "inputs_hash", "lm")


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
        as in `speechtok.corpora.read_manifest`), an audio file, or a list of them.
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
    n_q = tok.check_n_q(n_q)
    out = Path(out_dir)

    items = collect_inputs(inputs, root, splits, skip_missing)
    if not items:
        raise PretokenizeError(f"no audio files in {describe(inputs)}")
    paths = [it.path for it in items]
    ids = manifest_or_path_ids(items)
    meta = _meta(tok, n_q, dtype, dedup, num_parts, shard_size, len(items), inputs_hash(ids, paths), lm)
    code_dtype = torch.int16 if storage_dtype(tok.codebook_size) is np.int16 else torch.int32

    mine = split_part(len(items), num_parts, part)  # positions in `items`
    shards = make_shards(ids, paths, mine, shard_size)
    _make_dir(out)
    with _locked(out):
        _claim(out, meta)
        if lm is not None:
            LMVocab.from_dict(meta["lm"]["vocab"]).save(out / VOCAB_NAME)
    part_lock = _own_part(out, part, num_parts)  # held until closed below (or collected, on an error before)
    _remove_stale_temps(out, part)
    todo = [s for s in shards if not shard_done(out, part, s)]

    result = PretokenizeResult(out, part, num_parts, len(mine), len(shards), 0, len(shards) - len(todo), 0, [],
                               0.0, 0.0)
    bar = _Progress(len(mine), len(mine) - sum(len(s.ids) for s in todo), part, num_parts, t0) if progress else None
    try:
        for shard, window in read_windows(tok, todo, [str(paths[k]) for k in mine], bucket_size, batch_seconds,
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
                write_shard(out, part, shard.number, rows, failures, meta, dedup)
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
            rebuild_failures(out)
        if part_lock is not None:
            part_lock.close()
    result.num_failed = sum(len(read_failures(p)) for p in out.glob(f".part-{part:05d}-*.failures.tsv"))
    result.wall_seconds = time.perf_counter() - t0
    return result


def _tokenizer(tokenizer: Tokenizer | str | os.PathLike, device: str | torch.device | None) -> Tokenizer:
    local_gpu = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # under torchrun each rank on its own GPU
    if str(device) == "cuda":
        device = local_gpu
    if isinstance(tokenizer, Tokenizer):
        return (tokenizer if device is None else tokenizer.to(device)).eval()
    from ..registry import load

    if device is None:
        device = local_gpu if torch.cuda.is_available() else "cpu"
    return load(tokenizer, device=device)


def _encode(tok: Tokenizer, batch: Batch, n_q: int, dtype: str, code_dtype: torch.dtype
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
            yield batch.indices[0], error_line(e), batch.durations[0], None
            return
        for row, index in enumerate(batch.indices):
            n = int(batch.lengths[row])
            yield from _encode(tok, Batch([index], batch.wav[row : row + 1, :, :n], batch.lengths[row : row + 1],
                                           [batch.durations[row]]), n_q, dtype, code_dtype)
        return
    tokens = codes.codes.to(code_dtype).cpu().numpy()  # [B, n_q, T]
    for row, index in enumerate(batch.indices):
        scales = None if codes.scales is None else codes.item(row).scales[0].numpy()
        yield index, tokens[row, :, : int(codes.lengths[row])], batch.durations[row], scales


def _meta(tok: Tokenizer, n_q: int, dtype: str, dedup: bool, num_parts: int, shard_size: int, num_items: int,
          items_hash: str, lm: str | None = None) -> dict:
    lm_meta = None
    if lm is not None:
        get_pattern(lm)  # an unknown name fails here, before anything is written
        sizes = tuple(tok.codebook_sizes[:n_q])
        vocab = LMVocab(n_q, max(sizes), tokenizer=tok.identity(), codebook_sizes=sizes)
        lm_meta = {"pattern": lm, "vocab": vocab.to_dict()}
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
        **({"codebook_sizes": tok.codebook_sizes[:n_q]} if tok.mixed_codebook_sizes else {}),
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
        + (["segment_scales"] if tok.encoder.segments else []) + lm_columns,
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


class _Progress:
    """A tqdm bar of files with the hours of audio done and hours of audio per second (tqdm gives the ETA)."""

    def __init__(self, total: int, done: int, part: int, num_parts: int, t0: float) -> None:
        from ..runtime.progress import progress

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
