"""The streaming variant of an ONNX export: fixed-shape step graphs whose state is an explicit input and output.

    encoder_step.onnx  state float32 [B, 1, (left + right) * hop], chunk float32 [B, 1, step * hop]
                       -> codes int64 [B, Q, step], next_state float32 [B, 1, (left + right) * hop]
    decoder_step.onnx  state int64 [B, q, 2 * context], codes int64 [B, q, step]
                       -> audio float32 [B, 1, step * hop], next_state int64 [B, q, 2 * context]

They compute what `speechtok.streaming.EncodeStream` / `DecodeStream` compute once a stream is past its first
frames: the window of `step` frames with the encoder's (decoder's) receptive field of context on each side, the
state holding the context (the last audio samples; the last codes). While the first frames have less left context
than that, and at the end of the stream, a runtime runs the whole-input graphs (`encoder.onnx`, `decoder.onnx`) on
the shorter window instead, so every frame is the offline one. `config.json`'s `streaming` section states the
shapes and this protocol; `export/onnx_runtime.py` is a runtime of it in numpy and onnxruntime alone.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from ..streaming import encode_blocker
from ..tokenizer import Tokenizer


class _EncodeStep(nn.Module):
    def __init__(self, tok: Tokenizer, left: int, right: int, step: int):
        super().__init__()
        self.tok, self.left, self.right, self.step = tok, left, right, step

    def forward(self, state: Tensor, chunk: Tensor) -> tuple[Tensor, Tensor]:
        window = torch.cat([state, chunk], dim=-1)  # frames [a - left, b + right)
        z = self.tok.encoder(window)[..., self.left : self.left + self.step]  # frames [a, b)
        return self.tok.quantizer.encode(z, self.tok.num_codebooks), window[..., chunk.shape[-1] :]


class _DecodeStep(nn.Module):
    def __init__(self, tok: Tokenizer, context: int, step: int):
        super().__init__()
        self.tok, self.context, self.step = tok, context, step

    def forward(self, state: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        window = torch.cat([state, codes], dim=-1)  # frames [a - context, b + context)
        wav = self.tok.decoder(self.tok.quantizer.decode(window))
        hop = self.tok.hop_length
        return wav[..., self.context * hop : (self.context + self.step) * hop], window[..., codes.shape[-1] :]


def stream_blockers(tok: Tokenizer) -> dict[str, str | None]:
    """Why each direction cannot have a step graph (None: it can)."""
    enc = encode_blocker(tok)
    if enc is None and not tok.encoder.finite_context:
        enc = "a recurrent layer in its encoder reads the whole past"
    dec = None
    if tok.decoder is None or tok.decoder.receptive_field_frames >= sys.maxsize:
        dec = "it decodes in one pass" if tok.decoder is not None else "it has no decoder"
    return {"encoder": enc, "decoder": dec}


def export_streaming(tok: Tokenizer, out: Path, step: int, opset: int, export, blockers: dict[str, str | None]
                     ) -> dict:
    """Write the step graphs `tok` allows (`stream_blockers`) into `out` with `export`, onnx.py's exporter; the
    config section."""
    hop, section = tok.hop_length, {"step_frames": step}
    batch = torch.export.Dim("batch", min=1)
    if blockers["encoder"] is None:
        left = math.ceil(tok.encoder.receptive_field / hop)
        right = math.ceil(tok.encoder.lookahead / hop)
        width = (left + right) * hop
        state, chunk = torch.zeros(2, 1, width), torch.zeros(2, 1, step * hop)
        export(_EncodeStep(tok, left, right, step), (state, chunk), {"state": {0: batch}, "chunk": {0: batch}},
               ["state", "chunk"], ["codes", "next_state"], out / "encoder_step.onnx", opset)
        section["encoder"] = {
            "file": "encoder_step.onnx", "left_frames": left, "right_frames": right,
            "latency_seconds": (step + right) * hop / tok.sample_rate,
            "inputs": f"state float32 [B, 1, {width}] (the samples of frames [a - {left}, a + {right})), chunk "
                      f"float32 [B, 1, {step * hop}] (frames [a + {right}, b + {right}))",
            "outputs": f"codes int64 [B, {tok.num_codebooks}, {step}] of frames [a, b = a + {step}), next_state",
            "protocol": f"frames a < {left} (less left context) and the last frames (the input zero-padded to "
                        "whole frames): encoder.onnx on the samples of frames [max(0, a - left), min(end, b + "
                        "right)), keeping frames [a, b) of its output; then state = the samples of frames "
                        "[a - left, a + right) and encoder_step.onnx for each further chunk"}
    else:
        section["encoder_refused"] = blockers["encoder"]
    if blockers["decoder"] is None:
        context = tok.decoder.receptive_field_frames
        state = torch.zeros(2, tok.num_codebooks, 2 * context, dtype=torch.long)
        codes = torch.zeros(2, tok.num_codebooks, step, dtype=torch.long)
        codebooks = torch.export.Dim("codebooks", min=1, max=tok.num_codebooks)
        export(_DecodeStep(tok, context, step), (state, codes),
               {"state": {0: batch, 1: codebooks}, "codes": {0: batch, 1: codebooks}},
               ["state", "codes"], ["audio", "next_state"], out / "decoder_step.onnx", opset)
        section["decoder"] = {
            "file": "decoder_step.onnx", "context_frames": context,
            "latency_seconds": (step + context) * hop / tok.sample_rate,
            "inputs": f"state int64 [B, q, {2 * context}] (frames [a - {context}, a + {context})), codes int64 "
                      f"[B, q, {step}] (frames [a + {context}, b + {context}))",
            "outputs": f"audio float32 [B, 1, {step * hop}] of frames [a, b), next_state",
            "protocol": f"frames a < {context} and the last frames: decoder.onnx on the codes of frames "
                        "[max(0, a - context), min(end, b + context)), keeping the audio of frames [a, b); then "
                        "state = the codes of frames [a - context, a + context) and decoder_step.onnx"}
    else:
        section["decoder_refused"] = blockers["decoder"]
    return section
