#!/usr/bin/env python3
"""`Tokenizer.encode` / `decode` against the bare model forward, timed interleaved on the same input.

benchmarks/speed.py times each row in a block, so warm-up and heap growth favour whichever runs second; here the
two alternate call by call, which leaves only the API's own work in the difference.

    .venv/bin/python benchmarks/api_overhead.py --model speechtok-codec-16k --batch 1 --seconds 10
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import speechtok


def interleaved(first, second, repeats: int) -> tuple[float, float]:
    for f in (first, second, first, second):  # warm-up
        f()
    a, b = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        first()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        second()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speechtok-codec-16k")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    speechtok.tune_malloc()  # as the CLI does, and as the README tells batch users to
    tok = speechtok.load(args.model)
    x = 0.1 * torch.randn(args.batch, 1, int(args.seconds * tok.sample_rate))
    codes = tok.encode(x, tok.sample_rate)

    def encode_model():
        with torch.inference_mode():
            return tok.quantizer.encode(tok.encoder(x), tok.num_codebooks)

    def decode_model():
        with torch.inference_mode():
            return tok.decoder(tok.quantizer.decode(codes.codes))

    audio_s = args.batch * args.seconds
    for name, model, api in (("encode", encode_model, lambda: tok.encode(x, tok.sample_rate)),
                             ("decode", decode_model, lambda: tok.decode(codes))):
        m, a = interleaved(model, api, args.repeats)
        print(f"{name} b={args.batch}: model {m * 1e3:.1f} ms ({audio_s / m:.0f}x), Tokenizer {a * 1e3:.1f} ms "
              f"({audio_s / a:.0f}x), overhead {100 * (a / m - 1):+.1f}%")


if __name__ == "__main__":
    main()
