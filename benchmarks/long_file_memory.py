#!/usr/bin/env python3
"""Peak memory and speed of `speechtok encode FILE` on long files (a benchmark, not a test).

For each duration (minutes, `--minutes 1,10,60`) it writes one file, block by block, of real speech (the
LibriSpeech files of ../shared/data/librispeech_samples one after another, looped: 16 kHz; `--source tone` a
synthetic tone at `--rate`), then runs `python -m speechtok.cli encode FILE -m MODEL -o codes.npy` in a fresh
process with `--threads` torch threads and prints its peak RSS (the child's own, from wait4), wall time (process
start, model load and writing the codes included) and audio seconds per wall second. `encode_file` streams a
file longer than one chunk from disk, so the peak should not grow with the duration; `--whole` adds, for each
duration, a run that reads the file whole first (the path of files up to one chunk, and of every file before
streaming), to show what streaming saves. glibc's heap moves single peaks by 100-200 MB from run to run (where
freed activations left room): `--repeat` gives medians and ranges, `--fixed-mmap` the peak of what is held.

    .venv/bin/python benchmarks/long_file_memory.py                      # 1, 10, 60 min, the bundled default
    .venv/bin/python benchmarks/long_file_memory.py --minutes 1,10 --whole
    .venv/bin/python benchmarks/long_file_memory.py --model path/to/ckpt --source tone --rate 44100

On a shared machine the times are low and noisy: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from speechtok.registry import DEFAULT_TOKENIZER  # noqa: E402

# The pre-streaming path in the child: no file counts as long, so `encode_file` reads it whole.
WHOLE = ("import sys, speechtok.audio as a\na.header_seconds = lambda path: 0.0\n"
         "from speechtok.cli import main\nsys.exit(main(sys.argv[1:]))")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--minutes", default="1,10,60", help="comma list of durations")
    ap.add_argument("--model", default=DEFAULT_TOKENIZER, help="tokenizer name or checkpoint directory")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the encode process")
    ap.add_argument("--source", choices=("speech", "tone"), default="speech")
    ap.add_argument("--rate", type=int, default=16000, help="sample rate of a tone file (speech is 16 kHz)")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared/data directory")
    ap.add_argument("--whole", action="store_true", help="also encode each file read whole (no streaming)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the files go (default: a temp dir)")
    ap.add_argument("--fixed-mmap", action="store_true",
                    help="MALLOC_MMAP_THRESHOLD_=262144 in the child: freed tensors go back to the OS, so the peak "
                         "follows what is held, not where glibc's heap happened to have room (as the test runs)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each; the table gives medians and ranges (glibc's heap moves single peaks by "
                         "100 MB and more)")
    args = ap.parse_args(argv)

    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for minutes in (float(m) for m in args.minutes.split(",")):
            path = Path(tmp) / f"{minutes:g}min.wav"
            write_s = _write(path, minutes * 60, args)
            runs = {how: [] for how in (("streamed", "whole file") if args.whole else ("streamed",))}
            for _ in range(args.repeat):  # alternating, so that a slow spell of a shared machine hits both
                for how, timings in runs.items():
                    timings.append(_encode(path, args, how == "whole file"))
                    print(f"{minutes:g} min ({how}): peak {timings[-1][0]:.0f} MB, {timings[-1][1]:.1f} s (file "
                          f"written in {write_s:.1f} s)", file=sys.stderr, flush=True)
            rows += [(minutes, how, [t[0] for t in timings], [t[1] for t in timings]) for how, timings in runs.items()]
            path.unlink()
    load_end = os.getloadavg()

    print()
    print(f"Machine: {_cpu()}, {os.cpu_count()} cores, torch {_torch_version()}, {args.threads} torch thread(s); "
          f"load average {_load(load_start)} at start, {_load(load_end)} at end")
    print(f"Model: {args.model}; input: {_describe_source(args)}; `speechtok encode FILE -o codes.npy` in a fresh "
          "process each run (wall time includes start-up and model load)"
          + ("; glibc mmap threshold fixed at 256 KiB" if args.fixed_mmap else ""))
    print()
    print("| audio | read | peak RSS MB | wall s | audio s / wall s |")
    print("|---|---|---|---|---|")
    for minutes, how, peaks, walls in rows:
        print(f"| {minutes:g} min | {how} | {_spread(peaks, 0)} | {_spread(walls, 1)} | "
              f"{minutes * 60 / statistics.median(walls):.1f} |")
    if args.repeat > 1:
        print(f"\nMedians of {args.repeat} runs [range].")
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(f"\nWARNING: load average above {0.5 * (os.cpu_count() or 1):g}: other jobs shared the cores, so the "
              "times are contended (low and noisy); the peaks are not affected.")


def _write(path: Path, seconds: float, args) -> float:
    """Write `seconds` of the source to `path` as PCM-16, a block at a time; the seconds it took."""
    t0 = time.perf_counter()
    rate = 16000 if args.source == "speech" else args.rate
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        done = 0
        for block in _speech_blocks(args.data) if args.source == "speech" else _tone_blocks(rate):
            block = block[: total - done]
            f.write(block)
            done += block.size
            if done >= total:
                break
    return time.perf_counter() - t0


def _speech_blocks(data: Path):
    """The 16 kHz LibriSpeech files of `data` [T] one after another, looped."""
    files = sorted((data / "librispeech_samples" / "audio").rglob("*.flac"))
    if not files:
        sys.exit(f"no LibriSpeech files under {data}/librispeech_samples/audio (use --source tone)")
    while True:
        for f in files:
            wav, sr = sf.read(f, dtype="float32")
            assert sr == 16000, f"{f}: {sr} Hz"
            yield wav if wav.ndim == 1 else wav.mean(1)


def _tone_blocks(rate: int, block: int = 1 << 20):
    """A wobbling tone [block] at `rate`, block after block."""
    k = 0
    while True:
        t = np.arange(k, k + block) / rate
        yield (0.3 * np.sin(2 * np.pi * (200 + 50 * np.sin(0.3 * t)) * t)).astype(np.float32)
        k += block


def _encode(path: Path, args, whole: bool) -> tuple[float, float]:
    """(peak RSS MB, wall s) of `speechtok encode` of `path` in a fresh process (its own rusage, from wait4)."""
    head = ["-c", WHOLE] if whole else ["-m", "speechtok.cli"]
    cmd = [sys.executable, *head, "encode", str(path), "-m", args.model, "-o", str(path.with_suffix(".npy"))]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.fixed_mmap:
        env["MALLOC_MMAP_THRESHOLD_"] = "262144"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"encode of {path.name} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return usage.ru_maxrss / 1024, wall  # kB on Linux


def _describe_source(args) -> str:
    if args.source == "speech":
        return "LibriSpeech (librispeech_samples) files one after another, looped, 16 kHz PCM-16 WAV"
    return f"a synthetic tone, {args.rate} Hz PCM-16 WAV"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or platform.machine()


def _torch_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True)
    return out.stdout.strip() or "?"


def _spread(values: list[float], digits: int) -> str:
    """The median, and the range when there are several values: `1016 [846-1045]`."""
    med = f"{statistics.median(values):.{digits}f}"
    return med if len(values) == 1 else f"{med} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in avg)


if __name__ == "__main__":
    main()
