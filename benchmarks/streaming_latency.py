#!/usr/bin/env python3
"""Streaming latency and compute: for the default codec and the causal recipe's codec, the algorithmic latency of
`EncodeStream` / `DecodeStream` (a frame, plus the context ahead of it) and the wall time one 20 ms frame costs on
one CPU thread when audio arrives a frame at a time. Mimi (Kyutai) is the usual reference: 80 ms frames, 80 ms
algorithmic latency in its paper.

    .venv/bin/python benchmarks/streaming_latency.py --seconds 5
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import speechtok  # noqa: E402
from speechtok.config import from_dict  # noqa: E402
from speechtok.models import CodecConfig, build_codec  # noqa: E402
from speechtok.streaming import DecodeStream, EncodeStream  # noqa: E402
from speechtok.training.recipe import load_recipe  # noqa: E402


def per_frame_ms(tok, seconds: float) -> tuple[float, float]:
    """Wall ms per frame, audio (codes) pushed one frame at a time."""
    hop = tok.hop_length
    wav = 0.1 * torch.randn(int(seconds * tok.sample_rate) // hop * hop, generator=torch.Generator().manual_seed(0))
    enc = EncodeStream(tok)
    t = time.perf_counter()
    codes = [enc.push(wav[i : i + hop]) for i in range(0, wav.numel(), hop)] + [enc.flush()]
    enc_ms = 1000 * (time.perf_counter() - t) / (wav.numel() // hop)
    codes = torch.cat(codes, dim=-1)
    dec = DecodeStream(tok)
    t = time.perf_counter()
    for i in range(codes.shape[-1]):
        dec.push(codes[..., i : i + 1])
    dec.flush()
    dec_ms = 1000 * (time.perf_counter() - t) / codes.shape[-1]
    return enc_ms, dec_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {"speechtok-codec-16k (bundled)": speechtok.load("speechtok-codec-16k"),
              "codec_causal recipe (random weights)": build_codec(from_dict(CodecConfig,
                                                                            load_recipe("codec_causal").model)).eval()}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; {args.seconds:g} s "
          "pushed a frame (20 ms) at a time")
    print("| model | encode latency (ms) | decode latency (ms) | encode ms / frame | decode ms / frame |")
    print("|---|---|---|---|---|")
    for name, tok in models.items():
        enc_ms, dec_ms = per_frame_ms(tok, args.seconds)
        print(f"| {name} | {1000 * EncodeStream(tok).latency_seconds:.0f} | "
              f"{1000 * DecodeStream(tok).latency_seconds:.0f} | {enc_ms:.1f} | {dec_ms:.1f} |")
    print("| Mimi (paper) | 80 (frame) | 80 total | - | - |")


if __name__ == "__main__":
    main()
