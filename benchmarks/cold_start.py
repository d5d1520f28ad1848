#!/usr/bin/env python3
"""Cold start of the real one-file job: `speechtok encode examples/sample.flac -o x.npy` in a fresh process,
wall time from exec to exit (median of --runs), beside `python -c "import torch"` (the floor every command that
encodes pays) and the encode alone. Also lists the heavy modules the job imported (vector-quantize-pytorch,
einx, torch._dynamo should be absent for an RVQ codec). A benchmark, not a test.

    .venv/bin/python benchmarks/cold_start.py --runs 5 [--model speechtok-codec-16k] [--threads 2]
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

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.flac"
HEAVY = ("vector_quantize_pytorch", "einx", "torch._dynamo", "speechtok.training", "speechtok.eval")
PROBE = """
import sys, time
t0 = time.perf_counter()
import speechtok
tok = speechtok.load({model!r})
t1 = time.perf_counter()
tok.encode_file({sample!r})
t2 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}}", *[m for m in {heavy!r} if m in sys.modules])
"""


def _wall(cmd: list[str], env: dict, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--model", default="speechtok-codec-16k")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the timed processes")
    args = p.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        cli = [sys.executable, "-m", "speechtok.cli", "-q", "encode", str(SAMPLE), "-o", str(Path(tmp) / "x.npy"),
               "--model", args.model]
        encode = _wall(cli, env, args.runs)
    torch_only = _wall([sys.executable, "-c", "import torch"], env, args.runs)
    probe = subprocess.run([sys.executable, "-c", PROBE.format(model=args.model, sample=str(SAMPLE), heavy=HEAVY)],
                           capture_output=True, text=True, env=env, check=True).stdout.split()
    print(f"one-file encode, fresh process ({args.model}, {args.threads} threads, median of {args.runs}): "
          f"{statistics.median(encode):.2f} s (min {min(encode):.2f})")
    print(f"  python -c 'import torch': {statistics.median(torch_only):.2f} s; in-process: import + load "
          f"{probe[0]} s, encode {probe[1]} s")
    print(f"  heavy modules imported: {', '.join(probe[2:]) or 'none'}")


if __name__ == "__main__":
    main()
