"""A tokenizer -> `encoder.onnx` + `decoder.onnx` + `config.json` in a directory.

    encoder.onnx   audio float32 [B, 1, T] (T a multiple of hop_length: zero-pad) -> codes int64 [B, Q, T / hop]
    decoder.onnx   codes int64 [B, q, T_frames] (1 <= q <= Q: the first q codebooks) -> audio float32 [B, 1, T]
    config.json    format, sample and frame rate, hop, codebooks, the tokenizer's identity, opset, and how to use
                   the two graphs (mono at sample_rate, zero-pad to whole frames, trim the audio to the input's
                   length)

With `stream_step`, also the streaming step graphs (`encoder_step.onnx`, `decoder_step.onnx`: state as explicit
inputs and outputs, `onnx_stream.py`) and their protocol in config.json's `streaming` section.

Both graphs have dynamic batch and length (and q). They run the whole input in one pass: equal to
`Tokenizer.encode` / `decode` for inputs up to `chunk_seconds` (60 s), which longer inputs are cut into. The
nearest-code search is traced branch-free in float64 (`quantizers/rvq.py`), so the codes are the torch codes.

Exportable: the codec family with RVQ, whose encoder is masked and windowed by the tokenizer. Other tokenizers
(HuBERT units, which window long inputs themselves; the hybrid, which reads each item at its own length; flow
decoders, which sample noise; peers) are refused in one line that says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import __version__
from ..codecs.base import MASKED, TOKENIZER_WINDOWS
from ..errors import SpeechtokError
from ..fileio import atomic_path, write_text
from ..quantizers.rvq import RVQ
from ..tokenizer import Tokenizer

ONNX_FORMAT = "speechtok-onnx"
OPSET = 18  # Col2Im (the inverse STFT's overlap-add) and DFT


class OnnxExportError(SpeechtokError):
    """A tokenizer that cannot be exported (yet), or a missing exporter."""


class _Encode(nn.Module):
    def __init__(self, tok: Tokenizer):
        super().__init__()
        self.tok = tok

    def forward(self, audio: Tensor) -> Tensor:
        return self.tok.quantizer.encode(self.tok.encoder(audio), self.tok.num_codebooks)


class _Decode(nn.Module):
    def __init__(self, tok: Tokenizer):
        super().__init__()
        self.tok = tok

    def forward(self, codes: Tensor) -> Tensor:
        return self.tok.decoder(self.tok.quantizer.decode(codes))


def check_exportable(tok: Tokenizer) -> None:
    """An OnnxExportError naming why `tok` cannot be exported, or nothing."""
    enc = tok.encoder
    why = None
    if not tok.savable:
        why = "another package's model (a peer adapter): export it with its own tools"
    elif enc.windows != TOKENIZER_WINDOWS:
        why = "its encoder windows long inputs itself (HuBERT and Whisper units)"
    elif enc.batching != MASKED:
        why = "its encoder reads each item at its own length (the hybrid's reflection padding)"
    elif not isinstance(tok.quantizer, RVQ):
        why = f"its quantizer ({type(tok.quantizer).__name__}) is not exported yet (RVQ is)"
    elif tok.decoder is None or tok.decoder.sampling_options:
        why = "its decoder samples (a flow decoder) or it has none"
    if why:
        raise OnnxExportError(f"{tok.name} cannot be exported to ONNX: {why}")


def export_onnx(tok: Tokenizer, out_dir: str | os.PathLike, opset: int = OPSET, stream_step: int | None = None
                ) -> dict:
    """Write `encoder.onnx`, `decoder.onnx` and `config.json` for `tok` into `out_dir`; returns the config.
    `stream_step`: also the streaming step graphs of that many frames (`onnx_stream.py`), where `tok` streams."""
    check_exportable(tok)
    blockers = None
    if stream_step is not None:
        from .onnx_stream import stream_blockers

        blockers = stream_blockers(tok)
        if stream_step < 1:
            raise OnnxExportError(f"stream step {stream_step}: give 1 frame or more")
        if all(blockers.values()):
            raise OnnxExportError(f"{tok.name} cannot stream: encoder: {blockers['encoder']}; decoder: "
                                  f"{blockers['decoder']}")
    try:
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError:
        raise OnnxExportError("ONNX export needs the onnx extra: pip install 'speechtok[onnx]'") from None
    tok = tok.to("cpu").eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch, frames = torch.export.Dim("batch", min=1), torch.export.Dim("frames", min=2)
    codebooks = torch.export.Dim("codebooks", min=1, max=tok.num_codebooks)
    audio = torch.zeros(2, 1, 4 * tok.hop_length)
    codes = torch.zeros(2, tok.num_codebooks, 4, dtype=torch.long)
    _export(_Encode(tok), (audio,), {"audio": {0: batch, 2: tok.hop_length * frames}}, ["audio"], ["codes"],
            out / "encoder.onnx", opset)
    _export(_Decode(tok), (codes,), {"codes": {0: batch, 1: codebooks, 2: frames}}, ["codes"], ["audio"],
            out / "decoder.onnx", opset)
    config = {
        "format": ONNX_FORMAT, "format_version": 1, "speechtok_version": __version__, "opset": opset,
        "tokenizer": tok.identity(), "sample_rate": tok.sample_rate, "hop_length": tok.hop_length,
        "frame_rate": tok.frame_rate, "num_codebooks": tok.num_codebooks, "codebook_size": tok.codebook_size,
        "encoder": {"file": "encoder.onnx", "input": "audio float32 [B, 1, T], mono at sample_rate, T zero-padded "
                    "to a multiple of hop_length", "output": "codes int64 [B, num_codebooks, T / hop_length]"},
        "decoder": {"file": "decoder.onnx", "input": "codes int64 [B, q, T_frames], the first q codebooks",
                    "output": "audio float32 [B, 1, T_frames * hop_length]: trim to the input's length"},
        "max_seconds": tok.chunk_seconds,  # longer inputs: Tokenizer.encode cuts them into overlapping chunks
    }
    if blockers is not None:  # streaming asked for and possible
        from .onnx_stream import export_streaming

        config["streaming"] = export_streaming(tok, out, stream_step, opset, _export, blockers)
    write_text(out / "config.json", json.dumps(config, indent=1) + "\n")
    return config


def _export(module: nn.Module, args: tuple, dynamic: dict, inputs: list[str], outputs: list[str], path: Path,
            opset: int) -> None:
    # the exporter prints its progress on stdout, which is the CLI's data channel: it goes to stderr
    with atomic_path(path) as tmp, torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        program = torch.onnx.export(module.eval(), args, dynamo=True, dynamic_shapes=dynamic, input_names=inputs,
                                    output_names=outputs, opset_version=opset, verbose=False)
        program.save(str(tmp))
