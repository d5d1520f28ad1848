#!/usr/bin/env python3
"""Pre-tokenization speed end to end, beside the pure model forward on the same audio (a benchmark, not a test).

On the `train` splits of ../shared/data (librispeech_samples and speechocean762; `--limit N` takes N utterances
spread evenly over the two lists) it prints, for each `--workers` value, audio seconds per wall second of

- end to end: `speechtok.pretokenize(tok, files, fresh_dir, num_workers=W)`: listing, reading, resampling,
  bucketing, padding, encoding and Parquet writing (the model is loaded beforehand, outside the clock);
- the model: `Tokenizer._forward_codes` alone on the very batches the pipeline forms (same windows, same
  bucketing, audio read and padded beforehand, outside the clock), timed before and after the end-to-end runs,
  after a warm-up pass (on CUDA over every batch: each new shape pays its first-call costs);
- reading alone: the pipeline's own DataLoader (reading, resampling, bucketing, padding in its workers) with no
  model, the floor under the end-to-end time;

and the overhead, end-to-end wall time over the model's (the mean of its two runs) minus 1. The target is at most
15%. CPU seconds (this process and its finished children: the DataLoader workers) are printed beside the wall
times: on a shared machine wall times swing with the other jobs, CPU seconds much less. The tokenizer is the bundled default when there is one, else `build_codec(CodecConfig())` with random weights
(saved and loaded as a checkpoint): speed does not depend on the weights.

    .venv/bin/python benchmarks/pretokenize.py --limit 200              # a quick subset
    .venv/bin/python benchmarks/pretokenize.py --workers 0,2,4 --device cuda

On a shared machine the figures are low and noisy: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from speechtok import audio  # noqa: E402
from speechtok.pretokenize import bucket, pretokenize  # noqa: E402
from speechtok.registry import DEFAULT_TOKENIZER, bundled, load  # noqa: E402
from speechtok.tokenizer import Tokenizer  # noqa: E402
from speechtok.training.data import read_manifest  # noqa: E402

SETS = ("librispeech_samples", "speechocean762")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="the shared/data directory")
    ap.add_argument("--limit", type=int, default=200, help="utterances (0: all of both train splits)")
    ap.add_argument("--workers", default="0,2", help="comma list of DataLoader worker counts")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default=None, help="default: cuda when there is one, else cpu")
    ap.add_argument("--batch-seconds", type=float, default=200.0)
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--bucket-size", type=int, default=128)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a cProfile of the end-to-end run with the most workers here (pstats text)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok, which = _tokenizer(device)
    files = _train_files(args.data, args.limit)
    load_start = os.getloadavg()

    batches, seconds = _batches(tok, files, args)
    _forward(tok, batches if tok.device.type == "cuda" else batches[:1])  # warm-up (and cuDNN autotuning)
    model = [_timed(_forward, tok, batches)]
    rows, reads = [], []
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    for workers in worker_counts:
        reads.append((workers, *_timed(_read_only, tok, files, workers, args)))
        profile = args.profile if args.profile and workers == max(worker_counts) else None
        with tempfile.TemporaryDirectory() as out:
            (wall, cpu), result = _timed(_profiled, profile, pretokenize, tok, files, out, num_workers=workers,
                                         num_parts=1, part=0, batch_seconds=args.batch_seconds,
                                         max_batch_size=args.max_batch_size, bucket_size=args.bucket_size,
                                         shard_size=args.shard_size, result=True)
        rows.append((workers, wall, cpu, result))
    model.append(_timed(_forward, tok, batches))
    load_end = os.getloadavg()

    model_s = sum(m[0] for m in model) / len(model)
    model_cpu = sum(m[1] for m in model) / len(model)
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
          + f"; load average {_load(load_start)} at start, {_load(load_end)} at end")
    padded = sum(b[0].numel() for b in batches) / tok.sample_rate
    print(f"Tokenizer: {which} ({tok.sample_rate} Hz, {tok.num_codebooks} x {tok.codebook_size}, config "
          f"{tok.config_hash}); {len(files)} train files of {', '.join(SETS)}, {seconds / 3600:.3f} h; "
          f"{len(batches)} batches (at most {args.batch_seconds:g} s padded, {args.max_batch_size} items, buckets of "
          f"{args.bucket_size}), padding {100 * (padded / seconds - 1):.1f}% of the audio")
    print()
    print("| run | workers | wall s | audio s / wall s | overhead (wall) | CPU s | overhead (CPU) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| model forward (before, after) | - | {model[0][0]:.2f}, {model[1][0]:.2f} | {seconds / model_s:.1f} | - | "
          f"{model[0][1]:.2f}, {model[1][1]:.2f} | - |")
    for (workers, wall, cpu, result), (_, read_wall, read_cpu) in zip(rows, reads):
        print(f"| reading alone (no model) | {workers} | {read_wall:.2f} | {seconds / read_wall:.1f} | "
              f"{100 * (read_wall / model_s - 1):+.1f}% | {read_cpu:.2f} | {100 * (read_cpu / model_cpu - 1):+.1f}% |")
        print(f"| pretokenize end to end | {workers} | {wall:.2f} | {seconds / wall:.1f} | "
              f"{100 * (wall / model_s - 1):+.1f}% | {cpu:.2f} | {100 * (cpu / model_cpu - 1):+.1f}% |")
        assert result.rows + len(result.failures) == len(files)
    print()
    print("Overhead = end-to-end time / model-forward time (mean of its two runs) - 1; target: at most +15% (wall).")
    if load_start[0] > 0.5 * (os.cpu_count() or 1):  # at the end the load average counts this benchmark's own work
        print(f"WARNING: load average above {0.5 * (os.cpu_count() or 1):g}: other jobs shared the cores, so these "
              "figures are contended (low and noisy).")


def _tokenizer(device: str) -> tuple[Tokenizer, str]:
    if DEFAULT_TOKENIZER in bundled():
        return load(DEFAULT_TOKENIZER, device=device), DEFAULT_TOKENIZER
    from speechtok.families import CodecConfig, build_codec

    with tempfile.TemporaryDirectory() as ckpt:
        build_codec(CodecConfig()).save(ckpt)
        return load(ckpt, device=device), "build_codec(CodecConfig()), random weights"


def _train_files(data: Path, limit: int) -> list[Path]:
    files = [it.path for name in SETS for it in read_manifest(data / name / "manifest.tsv", splits=["train"])]
    if 0 < limit < len(files):
        step = len(files) / limit
        files = [files[int(k * step)] for k in range(limit)]
    return files


def _batches(tok: Tokenizer, files: list[Path], args) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], float]:
    """The padded batches `pretokenize` forms (windows of `bucket_size` files in order, within shards, sorted and
    cut by `bucket`), on the device, with their frame lengths; and the seconds of audio."""
    wavs = [audio.load(f, tok.sample_rate)[0, 0] for f in files]
    hop = tok.hop_length
    batches = []
    for s in range(0, len(wavs), args.shard_size):
        shard = wavs[s : s + args.shard_size]
        for w in range(0, len(shard), args.bucket_size):
            window = shard[w : w + args.bucket_size]
            for group in bucket([x.numel() for x in window], int(args.batch_seconds * tok.sample_rate),
                                args.max_batch_size):
                lengths = torch.tensor([window[i].numel() for i in group])
                frames = (lengths + hop - 1) // hop
                x = torch.zeros(len(group), 1, int(frames.max()) * hop)
                for row, i in enumerate(group):
                    x[row, 0, : window[i].numel()] = window[i]
                batches.append((x.to(tok.device), frames))
    return batches, sum(x.numel() for x in wavs) / tok.sample_rate


def _forward(tok: Tokenizer, batches) -> None:
    """The pure model forward over `batches`."""
    with torch.inference_mode():
        for x, frames in batches:
            tok._forward_codes(x, frames, tok.num_codebooks)
        if tok.device.type == "cuda":
            torch.cuda.synchronize()


def _read_only(tok: Tokenizer, files: list[Path], workers: int, args) -> None:
    """The pipeline's reading alone: its DataLoader's windows (read, resampled, bucketed, padded), no model."""
    from speechtok.pretokenize import _make_shards, _windows

    paths = [str(f) for f in files]
    shards = _make_shards(paths, paths, range(len(paths)), args.shard_size)
    for _ in _windows(tok, shards, paths, args.bucket_size, args.batch_seconds, args.max_batch_size, workers):
        pass


def _profiled(path: Path | None, fn, *args, **kwargs):
    """fn(...), under cProfile when `path` (its 30 costliest calls by cumulative time go there as text)."""
    if path is None:
        return fn(*args, **kwargs)
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    out = prof.runcall(fn, *args, **kwargs)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(30)
    path.write_text(text.getvalue())
    return out


def _timed(fn, *args, result: bool = False, **kwargs):
    """(wall s, CPU s of this process and its finished children) of fn(...), and its result when `result`."""
    c0, t0 = os.times(), time.perf_counter()
    out = fn(*args, **kwargs)
    c1, wall = os.times(), time.perf_counter() - t0
    cpu = sum(b - a for a, b in zip(c0[:4], c1[:4]))  # user, system, children's user, children's system
    return ((wall, cpu), out) if result else (wall, cpu)


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


if __name__ == "__main__":
    main()
