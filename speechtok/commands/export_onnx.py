"""`speechtok export-onnx MODEL -o DIR`: a tokenizer's encoder and decoder as ONNX graphs (speechtok/export)."""

from __future__ import annotations

import argparse
import logging

from ..errors import SpeechtokError, one_line

log = logging.getLogger("speechtok")


def register(subparsers) -> None:
    p = subparsers.add_parser("export-onnx", help="write a tokenizer's encoder and decoder as ONNX graphs",
                              description="Write encoder.onnx (audio -> codes), decoder.onnx (codes -> audio) and "
                                          "config.json into DIR, with dynamic batch and length, for runtimes "
                                          "without speechtok (onnxruntime). Needs: pip install 'speechtok[onnx]'.")
    p.add_argument("model", help="a bundled name or checkpoint directory (speechtok list)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the directory to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--stream-step", type=int, default=None, metavar="FRAMES",
                   help="also write the streaming step graphs (encoder_step.onnx, decoder_step.onnx: fixed shapes, "
                        "the state as an input and an output) for steps of FRAMES frames; config.json's "
                        "`streaming` section gives the protocol (speechtok/export/onnx_runtime.py runs it)")
    p.set_defaults(func=cmd_export_onnx)


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from ..export.onnx import OPSET, export_onnx
    from ..registry import load

    try:
        config = export_onnx(load(args.model), args.output, opset=args.opset or OPSET, stream_step=args.stream_step)
    except SpeechtokError as e:
        log.error("%s", one_line(e))
        return 1
    log.info("wrote %s: encoder.onnx, decoder.onnx, config.json (opset %d, %d x %d codes at %g Hz)", args.output,
             config["opset"], config["num_codebooks"], config["codebook_size"], config["frame_rate"])
    for part in ("encoder", "decoder"):
        streaming = config.get("streaming", {})
        if part in streaming:
            log.info("  %s (latency %.0f ms)", streaming[part]["file"], 1000 * streaming[part]["latency_seconds"])
        elif f"{part}_refused" in streaming:
            log.warning("  no streaming %s: %s", part, streaming[f"{part}_refused"])
    print(args.output)
    return 0
