#!/usr/bin/env python3
"""Resynthesis quality of a tokenizer on the fixed evaluation sets: PESQ-wb and STOI at several Q.

A thin wrapper of `speechtok eval` (speechtok.eval.evaluate), which supersedes it: same utterances, metrics,
protocol and results schema; `speechtok eval` adds more metrics, several models and the leaderboard.

    python benchmarks/quality.py --model speechtok-codec-16k --sets LS-test,SO-test --n-q 1,2,4,8
    python benchmarks/quality.py --model runs/x/export --sets LS-dev --limit 20      # quick dev figure

Each utterance is encoded once at full Q; each Q decodes the first Q codebooks. References are the lossless
originals at their native rate; PESQ-wb and STOI come from speechtok.eval (pesq / pystoi packages, soxr).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from speechtok.eval import EvalConfig, evaluate
from speechtok.eval.sets import eval_set

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speechtok-codec-16k")
    p.add_argument("--sets", default="LS-test,SO-test")
    p.add_argument("--n-q", default="1,2,4,8")
    p.add_argument("--limit", type=int, default=None, help="first N utterances of each set")
    p.add_argument("--data", default=str(DATA), help="the shared/data directory")
    p.add_argument("--workers", type=int, default=0, help="metric processes (0: this one)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    cfg = EvalConfig(metrics=("pesq_wb", "stoi"), n_qs=tuple(int(q) for q in args.n_q.split(",")),
                     workers=args.workers, progress=False)
    results = {s: evaluate([args.model], eval_set(s, args.data)[: args.limit], cfg, data_name=s)
               for s in args.sets.split(",")}
    print(f"model {args.model}, {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| set | utts | Q | kbps | PESQ-wb | STOI |\n|---|---|---|---|---|---|")
    for name, res in results.items():
        for row in res["rows"]:
            if row["status"] != "ok":
                print(f"| {name} | {res['data']['scored']} | {row['n_q']} | failed: {row['error']} | | |")
                continue
            mean = {k: (v or {}).get("mean", float("nan")) for k, v in row["aggregate"].items()}
            kbps = row["bitrate"]["nominal_bps"] / 1000
            print(f"| {name} | {len(row['utterances'])} | {row['n_q']} | {kbps:.1f} | {mean['pesq_wb']:.3f} | "
                  f"{mean['stoi']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
