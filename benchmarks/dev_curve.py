#!/usr/bin/env python3
"""Dev PESQ against training steps: evaluate a run's checkpoints as they appear (run it beside training).

    python benchmarks/dev_curve.py runs/codec --set LS-dev --limit 10 --every 1000 --watch

Appends `step, n_q, pesq_wb, stoi` rows to RUN_DIR/dev_curve.csv, skipping steps already there.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

from speechtok.eval import EvalConfig, evaluate
from speechtok.eval.sets import eval_set
from speechtok.training import checkpoints
from speechtok.training.trainer import load_run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def done_steps(path: Path) -> set[int]:
    if not path.is_file():
        return set()
    with open(path, newline="") as f:
        return {int(r["step"]) for r in csv.DictReader(f)}


def evaluate_checkpoint(run_dir: Path, ckpt: Path, args) -> None:
    trainer = load_run(run_dir)  # the run's recipe; then the chosen checkpoint's weights
    trainer.resume(ckpt)
    cfg = EvalConfig(metrics=("pesq_wb", "stoi"), n_qs=(args.n_q,), workers=0, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer.task.export().save(tmp)
        row = evaluate([tmp], eval_set(args.set, args.data)[: args.limit], cfg, data_name=args.set)["rows"][0]
    scores = {k: v["mean"] for k, v in row["aggregate"].items()}
    out = run_dir / "dev_curve.csv"
    new = not out.is_file()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["step", "set", "n_q", "pesq_wb", "stoi"])
        w.writerow([trainer.step, args.set, args.n_q, f"{scores['pesq_wb']:.4f}", f"{scores['stoi']:.4f}"])
    print(f"step {trainer.step}: PESQ-wb {scores['pesq_wb']:.3f}, STOI {scores['stoi']:.4f}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--set", default="LS-dev")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--n-q", type=int, default=8)
    p.add_argument("--every", type=int, default=1000, help="evaluate checkpoints whose step is a multiple of this")
    p.add_argument("--watch", action="store_true", help="keep polling for new checkpoints")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=str(DATA))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    while True:
        seen = done_steps(args.run_dir / "dev_curve.csv")
        for ckpt in checkpoints.list_checkpoints(args.run_dir):
            step = int(checkpoints.PATTERN.search(ckpt.name).group(1))
            if step % args.every == 0 and step not in seen:
                try:
                    evaluate_checkpoint(args.run_dir, ckpt, args)
                except FileNotFoundError:  # rotated away by the trainer meanwhile
                    continue
        if not args.watch:
            return 0
        time.sleep(30)


if __name__ == "__main__":
    sys.exit(main())
