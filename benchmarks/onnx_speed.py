#!/usr/bin/env python3
"""onnxruntime against torch on the same input: a tokenizer's exported encoder and decoder (speechtok/export)
beside its bare torch forward, timed interleaved, on CPU with the same number of threads.

    .venv/bin/python benchmarks/onnx_speed.py --model speechtok-codec-16k --seconds 10 --threads 2
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_overhead import interleaved  # noqa: E402 - the interleaved timing of benchmarks/api_overhead.py

import speechtok  # noqa: E402
from speechtok.export import export_onnx  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="speechtok-codec-16k")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    tok = speechtok.load(args.model)
    out = Path(tempfile.mkdtemp(prefix="speechtok-onnx-"))
    export_onnx(tok, out)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    enc = ort.InferenceSession(str(out / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(out / "decoder.onnx"), opts, providers=["CPUExecutionProvider"])
    frames = int(args.seconds * tok.frame_rate)
    wav = 0.1 * torch.randn(args.batch, 1, frames * tok.hop_length, generator=torch.Generator().manual_seed(0))
    codes = tok.encode(wav, tok.sample_rate).codes
    audio_s = args.batch * args.seconds
    with torch.inference_mode():
        rows = {  # the two alternate call by call, so neither gets the warmer machine
            "encode": interleaved(lambda: tok.quantizer.encode(tok.encoder(wav), tok.num_codebooks),
                                  lambda: enc.run(None, {"audio": wav.numpy()}), args.repeats),
            "decode": interleaved(lambda: tok.decoder(tok.quantizer.decode(codes)),
                                  lambda: dec.run(None, {"codes": codes.numpy()}), args.repeats),
        }
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"{args.threads} threads; {args.model}, batch {args.batch} x {args.seconds:g} s; median of {args.repeats}, "
          "interleaved")
    print("| direction | torch xRT | onnxruntime xRT | onnxruntime / torch |")
    print("|---|---|---|---|")
    for name, (t_torch, t_ort) in rows.items():
        print(f"| {name} | {audio_s / t_torch:.0f} | {audio_s / t_ort:.0f} | {t_torch / t_ort:.2f}x |")


if __name__ == "__main__":
    main()
