#!/usr/bin/env python3
"""The flow decoder against the GAN decoder on the same codes, and its quality and decode speed against the
number of ODE steps (Euler and midpoint).

    python benchmarks/flow_steps.py --flow runs/flow-export --gan speechtok-codec-16k --data LS-test \
        --steps 1 2 4 8 16 --methods euler midpoint -o flow_steps.json

Each utterance is encoded once by the GAN tokenizer; every row decodes those codes (the flow tokenizer shares its
encoder and quantizer). Metrics are speechtok eval's (PESQ-wb, STOI, mel distance, F0 RMSE), mean and 95% interval.
Speed: x-realtime of `Tokenizer.decode` on a 10 s clip at batch 1, median of 3 after a warm-up, on `--threads`
threads; NFE = network evaluations per decode (steps, or 2 x steps for midpoint).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import speechtok
from speechtok import audio
from speechtok.eval.metrics import score_utterance
from speechtok.eval.sets import utterances
from speechtok.eval.stats import mean_ci

METRICS = ("pesq_wb", "stoi", "mel", "f0")
COLUMNS = ("pesq_wb", "stoi", "mel", "f0_rmse_cents")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flow", required=True, help="the flow-decoded tokenizer (checkpoint directory)")
    p.add_argument("--gan", default="speechtok-codec-16k", help="the tokenizer whose codes both decode")
    p.add_argument("--data", required=True, help="LS-test, SO-test, a manifest or a directory")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--methods", nargs="+", default=["euler", "midpoint"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    gan, flow = speechtok.load(args.gan), speechtok.load(args.flow)
    rows = [("gan", gan, {})] + [(f"flow {m} x{n}", flow, {"steps": n, "method": m})
                                 for m in args.methods for n in args.steps]
    utts = utterances(args.data)[: args.limit]
    scores: dict[str, dict[str, list[float]]] = {name: {c: [] for c in COLUMNS} for name, _, _ in rows}
    for i, utt in enumerate(utts):
        wav, sr = audio.read(utt.path)
        ref = np.ascontiguousarray(wav.mean(axis=0), dtype=np.float32)
        codes = gan.encode(ref, sr)
        outs = {name: audio.resample(tok.decode(codes, **opts)[0, 0].numpy(), tok.sample_rate, sr)
                for name, tok, opts in rows}
        for name, s in score_utterance(ref, outs, sr, METRICS).items():
            for c in COLUMNS:
                if s.values.get(c) is not None:
                    scores[name][c].append(float(s.values[c]))
        print(f"{i + 1}/{len(utts)} {utt.id}", flush=True)
    clip = _clip(utts, gan.sample_rate, seconds=10.0)
    codes = gan.encode(clip, gan.sample_rate)
    table = []
    for name, tok, opts in rows:
        speed = _xrt(lambda tok=tok, opts=opts: tok.decode(codes, **opts), clip.shape[-1] / gan.sample_rate)
        nfe = 0 if not opts else opts["steps"] * (2 if opts["method"] == "midpoint" else 1)
        agg = {c: mean_ci(v) for c, v in scores[name].items()}
        table.append({"decoder": name, "nfe": nfe, "decode_xrt": speed,
                      **{c: None if a is None else a.to_json() for c, a in agg.items()}})
    seconds = clip.shape[-1] / gan.sample_rate
    print(f"\n{args.data}: {len(utts)} utterances, speed on {seconds:g} s, {args.threads} thread(s)\n")
    print("| decoder | NFE | PESQ-wb | STOI | mel distance | F0 RMSE (cents) | decode x-realtime |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in table:
        cells = [_fmt(r[c]) for c in COLUMNS]
        print(f"| {r['decoder']} | {r['nfe']} | {' | '.join(cells)} | {r['decode_xrt']:.1f} |")
    with open(args.output, "w") as f:
        json.dump({"data": args.data, "utterances": len(utts), "threads": args.threads, "rows": table}, f, indent=2)
    return 0


def _clip(utts, sample_rate: int, seconds: float) -> torch.Tensor:
    """The first utterances joined up to `seconds`: [T]."""
    parts, total = [], 0
    for utt in utts:
        x = audio.load(utt.path, sample_rate)[0, 0]
        parts.append(x)
        total += x.shape[-1]
        if total >= seconds * sample_rate:
            break
    return torch.cat(parts)[: int(seconds * sample_rate)]


def _xrt(fn, seconds: float, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return seconds / statistics.median(times)


def _fmt(summary: dict | None) -> str:
    if summary is None:
        return "-"
    digits = 1 if abs(summary["mean"]) >= 100 else 3
    lo, hi = summary["ci95"]
    return f"{summary['mean']:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
