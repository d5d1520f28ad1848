#!/usr/bin/env python3
"""Resynthesis quality of a tokenizer on the fixed evaluation sets: PESQ-wb and STOI at several Q.

    python benchmarks/quality.py --model speechtok-codec-16k --sets LS-test,SO-test --n-q 1,2,4,8
    python benchmarks/quality.py --model runs/x/export --sets LS-dev --limit 20      # quick dev figure

Each utterance is encoded once at full Q; each Q decodes the first Q codebooks. References are the lossless
originals at 16 kHz; PESQ-wb and STOI come from speechtok.eval (pesq / pystoi packages, soxr resampling).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import speechtok
from speechtok import audio
from speechtok.eval import pesq, stoi
from speechtok.eval.sets import eval_set

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def evaluate(tok, set_name: str, n_qs: list[int], data_root: Path, limit: int | None = None) -> dict:
    utts = eval_set(set_name, data_root)[:limit]
    scores = {q: {"pesq_wb": [], "stoi": []} for q in n_qs}
    start = time.time()
    for utt in utts:
        ref = audio.load(utt.path, tok.sample_rate)
        codes = tok.encode(ref, tok.sample_rate)
        for q in n_qs:
            out = tok.decode(dataclasses.replace(codes, codes=codes.codes[:, :q]))[0, 0].numpy()
            scores[q]["pesq_wb"].append(pesq(ref[0, 0].numpy(), out, tok.sample_rate, mode="wb"))
            scores[q]["stoi"].append(stoi(ref[0, 0].numpy(), out, tok.sample_rate))
    return {
        "set": set_name, "utterances": len(utts), "seconds": round(time.time() - start, 1),
        "by_n_q": {q: {k: float(np.mean(v)) for k, v in s.items()} for q, s in scores.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speechtok-codec-16k")
    p.add_argument("--sets", default="LS-test,SO-test")
    p.add_argument("--n-q", default="1,2,4,8")
    p.add_argument("--limit", type=int, default=None, help="first N utterances of each set")
    p.add_argument("--data", default=str(DATA), help="the shared/data directory")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    tok = speechtok.load(args.model)
    n_qs = [int(q) for q in args.n_q.split(",")]
    results = [evaluate(tok, s, n_qs, Path(args.data), args.limit) for s in args.sets.split(",")]
    print(f"model {tok.name} ({args.model}), {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| set | utts | Q | kbps | PESQ-wb | STOI |\n|---|---|---|---|---|---|")
    for r in results:
        for q, s in r["by_n_q"].items():
            kbps = tok.frame_rate * q * np.log2(tok.codebook_size) / 1000
            print(f"| {r['set']} | {r['utterances']} | {q} | {kbps:.1f} | {s['pesq_wb']:.3f} | {s['stoi']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
