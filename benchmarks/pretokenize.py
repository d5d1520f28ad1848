#!/usr/bin/env python3
"""Pre-tokenization speed end to end, beside the pure model forward on the same audio (a benchmark, not a test).

On the `train` splits of ../shared/data (librispeech_samples and speechocean762; `--limit N` takes N utterances
spread evenly over the two lists) it prints, for each way of reading (on the CPU: between forward passes, the
default there; then reading ahead with each `--workers` value), audio seconds per wall second of

- end to end: `speechtok.pretokenize(tok, files, fresh_dir, read_ahead=..., num_workers=W)`: listing, reading,
  resampling, bucketing, padding, encoding and Parquet writing (the model is loaded beforehand, outside the
  clock), in a fresh process, as the CLI runs it;
- the model: `Tokenizer._forward_codes` alone on the very batches the pipeline forms (same windows, same
  bucketing, audio read and padded beforehand, outside the clock), after a warm-up pass (on CUDA over every
  batch: each new shape pays its first-call costs), in a fresh process before and after each round of the other
  runs;
- reading alone: the pipeline's own reader (reading, resampling, bucketing, padding) with no model, in a fresh
  process too: the floor under the end-to-end time;

and the overhead, end-to-end wall time over the model's minus 1. The target is at most 15%. Every run has a
process of its own, so that none inherits another's heap or threads and this one holds no model state. With
`--repeat N` the runs go round N times (the model once more) and the table gives medians and ranges: a shared
machine's slow spells move single runs by 10 points and more. CPU seconds (the run's process and its finished
children: the DataLoader workers) are printed beside the wall times. The tokenizer is the bundled default when
there is one, else `build_codec(CodecConfig())` with random weights (saved and loaded as a checkpoint): speed
does not depend on the weights.

    .venv/bin/python benchmarks/pretokenize.py --limit 200              # a quick subset
    .venv/bin/python benchmarks/pretokenize.py --limit 1000 --repeat 3  # medians on a noisy machine
    .venv/bin/python benchmarks/pretokenize.py --workers 0,2,4 --device cuda

On a shared machine the figures are low and noisy: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from speechtok import audio  # noqa: E402
from speechtok.pretokenize import bucket, default_batch_seconds, pretokenize  # noqa: E402
from speechtok.registry import DEFAULT_TOKENIZER, bundled, load  # noqa: E402
from speechtok.tokenizer import Tokenizer  # noqa: E402
from speechtok.training.data import read_manifest  # noqa: E402

SETS = ("librispeech_samples", "speechocean762")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="the shared/data directory")
    ap.add_argument("--limit", type=int, default=200, help="utterances (0: all of both train splits)")
    ap.add_argument("--workers", default="0,2", help="comma list of DataLoader worker counts to read ahead with")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default=None, help="default: cuda when there is one, else cpu")
    ap.add_argument("--batch-seconds", type=float, default=None, help="default: pretokenize's for the device")
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--bucket-size", type=int, default=128)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--profile", default=None,
                    help="write a cProfile of the first end-to-end run (the device's default reading) here, as text")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of runs; the table gives medians and ranges")
    ap.add_argument("--child", choices=("model", "read", "end-to-end"), help=argparse.SUPPRESS)  # one run
    ap.add_argument("--read-ahead", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok, which = _tokenizer(device if args.child else "cpu")  # this process only prints the tokenizer's figures
    if args.batch_seconds is None:
        args.batch_seconds = default_batch_seconds(device)
    files = _train_files(args.data, args.limit)
    if args.child:
        return _child(args, tok, files)
    load_start = os.getloadavg()

    readers = [(True, int(w)) for w in args.workers.split(",") if w]  # (read ahead, workers)
    if torch.device(device).type == "cpu":
        readers.insert(0, (False, 0))
    model, runs = [], {}
    for r in range(args.repeat + 1):  # rounds, so that a slow spell of a shared machine hits every row alike
        wall, cpu, seconds, padded, num_batches = _in_child(argv, "model")
        model.append((wall, cpu))
        for ahead, workers in readers if r < args.repeat else ():
            for run in ("read", "end-to-end"):
                profile = args.profile if run == "end-to-end" and (ahead, workers) == readers[0] and r == 0 else None
                wall, cpu, done = _in_child(argv, run, ahead, workers, profile)
                assert done == len(files), f"{run}, {_reading(ahead, workers)}: {done} of {len(files)} files done"
                runs.setdefault((run, ahead, workers), []).append((wall, cpu))
    load_end = os.getloadavg()

    model_s, model_cpu = (statistics.median(m[k] for m in model) for k in (0, 1))
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch threads, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
          + f"; load average {_load(load_start)} at start, {_load(load_end)} at end")
    print(f"Tokenizer: {which} ({tok.sample_rate} Hz, {tok.num_codebooks} x {tok.codebook_size}, config "
          f"{tok.config_hash}); {len(files)} train files of {', '.join(SETS)}, {seconds / 3600:.3f} h; "
          f"{num_batches} batches (at most {args.batch_seconds:g} s padded, {args.max_batch_size} items, buckets of "
          f"{args.bucket_size}), padding {100 * (padded / seconds - 1):.1f}% of the audio; medians of "
          f"{len(model)} model runs and {args.repeat} of each other run (range in brackets)")
    print()
    print("| run | reading | wall s | audio s / wall s | overhead (wall) | CPU s | overhead (CPU) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| model forward | - | {_spread([m[0] for m in model])} | {seconds / model_s:.1f} | - | "
          f"{_spread([m[1] for m in model])} | - |")
    names = {"read": "reading alone (no model)", "end-to-end": "pretokenize end to end"}
    for (run, ahead, workers), timings in runs.items():
        wall, cpu = (statistics.median(t[k] for t in timings) for k in (0, 1))
        print(f"| {names[run]} | {_reading(ahead, workers)} | {_spread([t[0] for t in timings])} | "
              f"{seconds / wall:.1f} | "
              f"{100 * (wall / model_s - 1):+.1f}% | {_spread([t[1] for t in timings])} | "
              f"{100 * (cpu / model_cpu - 1):+.1f}% |")
    print()
    print("Overhead = end-to-end time / model-forward time (medians) - 1; target: at most +15% (wall).")
    if load_start[0] > 0.5 * (os.cpu_count() or 1):  # at the end the load average counts this benchmark's own work
        print(f"WARNING: load average above {0.5 * (os.cpu_count() or 1):g}: other jobs shared the cores, so these "
              "figures are contended (low and noisy).")


def _tokenizer(device: str) -> tuple[Tokenizer, str]:
    if DEFAULT_TOKENIZER in bundled():
        return load(DEFAULT_TOKENIZER, device=device), DEFAULT_TOKENIZER
    from speechtok.models import CodecConfig, build_codec

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
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # outside the clock; threads only shorten the wait
        wavs = list(pool.map(lambda f: audio.load(f, tok.sample_rate)[0, 0], files))
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


def _reading(ahead: bool, workers: int) -> str:
    if not ahead:
        return f"between passes, {torch.get_num_threads()} threads"
    return f"ahead, {workers} workers" if workers else "ahead, a thread"


def _in_child(argv: list[str] | None, run: str, ahead: bool = True, workers: int = 0, profile: str | None = None
               ) -> list:
    """What one run in a fresh process prints (see `_child`), as the CLI runs: no state of earlier runs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv += ["--child", run, "--workers", str(workers), "--profile", profile or "",
             "--read-ahead" if ahead else "--no-read-ahead"]
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{run} run, {_reading(ahead, workers)}, failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(args, tok: Tokenizer, files: list[Path]) -> None:
    """One timed run (`--child`); prints as JSON [wall s, CPU s, files written or failed], or for the model
    [wall s, CPU s, seconds of audio, seconds of padded audio, batches]."""
    workers = int(args.workers)
    if args.child == "model":
        batches, seconds = _batches(tok, files, args)
        _forward(tok, batches if tok.device.type == "cuda" else batches[:1])  # warm-up (and cuDNN autotuning)
        wall, cpu = _timed(_forward, tok, batches)
        padded = sum(b[0].numel() for b in batches) / tok.sample_rate
        return print(json.dumps([wall, cpu, seconds, padded, len(batches)]))
    if args.child == "read":
        (wall, cpu), done = _timed(_read_only, tok, files, workers, args, result=True)  # args.read_ahead inside
    else:
        with tempfile.TemporaryDirectory() as out:
            (wall, cpu), result = _timed(_profiled, args.profile, pretokenize, tok, files, out, num_workers=workers,
                                         read_ahead=args.read_ahead, num_parts=1, part=0,
                                         batch_seconds=args.batch_seconds, max_batch_size=args.max_batch_size,
                                         bucket_size=args.bucket_size, shard_size=args.shard_size, result=True)
        done = result.rows + len(result.failures)
    print(json.dumps([wall, cpu, done]))


def _read_only(tok: Tokenizer, files: list[Path], workers: int, args) -> int:
    """The pipeline's reading alone: its windows (read, resampled, bucketed, padded), no model; the number of
    files."""
    from speechtok.pretokenize.reading import read_windows
    from speechtok.pretokenize.shards import make_shards

    paths = [str(f) for f in files]
    shards = make_shards(paths, paths, range(len(paths)), args.shard_size)
    done = 0
    for _, window in read_windows(tok, shards, paths, args.bucket_size, args.batch_seconds, args.max_batch_size,
                              workers, args.read_ahead):
        done += len(window.indices)
    return done


def _profiled(path: str | None, fn, *args, **kwargs):
    """fn(...), under cProfile when `path` (its 30 costliest calls by cumulative time go there as text)."""
    if not path:
        return fn(*args, **kwargs)
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    out = prof.runcall(fn, *args, **kwargs)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(30)
    Path(path).write_text(text.getvalue())
    return out


def _timed(fn, *args, result: bool = False, **kwargs):
    """(wall s, CPU s of this process and its finished children) of fn(...), and its result when `result`."""
    c0, t0 = os.times(), time.perf_counter()
    out = fn(*args, **kwargs)
    c1, wall = os.times(), time.perf_counter() - t0
    cpu = sum(b - a for a, b in zip(c0[:4], c1[:4]))  # user, system, children's user, children's system
    return ((wall, cpu), out) if result else (wall, cpu)


def _spread(values: list[float]) -> str:
    """The median, and the range when there are several values: `35.72 [33.10-39.69]`."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


if __name__ == "__main__":
    main()
