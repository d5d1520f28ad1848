"""`speechtok encode --stream IN`: encode as audio arrives (speechtok.streaming.EncodeStream), from a file read in
blocks or raw 16-bit PCM on stdin (`-`), printing each frame's codes on stdout the moment it is complete, or writing
one codes file at the end (-o). The codes are the offline codes of the whole input."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator

import numpy as np

log = logging.getLogger("speechtok")


def run(args: argparse.Namespace) -> int:
    from ..codes import Codes
    from ..errors import SpeechtokError, one_line
    from ..registry import load
    from ..streaming import EncodeStream

    if len(args.inputs) != 1:
        log.error("--stream encodes one input (a file, or - for raw 16-bit PCM on stdin); got %d", len(args.inputs))
        return 2
    try:
        tok = load(args.model, device=args.device)
        stream = EncodeStream(tok, n_q=args.n_q)
        source = args.inputs[0]
        blocks = _stdin_blocks(args.chunk_ms, tok.sample_rate) if source == "-" else _file_blocks(args, tok)
        t0, frames, parts = time.perf_counter(), 0, []
        for block in blocks:
            codes = stream.push(block)
            frames = _emit(codes, frames, parts, args.output)
        frames = _emit(stream.flush(), frames, parts, args.output)
    except (SpeechtokError, OSError, ValueError) as e:
        log.error("%s", one_line(e))
        return 1
    seconds = stream.num_samples / tok.sample_rate
    if args.output:
        import torch

        codes = Codes(codes=torch.cat(parts, dim=-1), lengths=torch.tensor([frames]), sample_rate=tok.sample_rate,
                      hop_length=tok.hop_length, num_samples=torch.tensor([stream.num_samples]),
                      tokenizer=tok.identity())
        codes.save(args.output, args.format)
    log.warning("streamed %d frames (%.2f s of audio) through %s in %.2f s; latency %.0f ms (a frame and its "
             "lookahead)", frames, seconds, tok.name, time.perf_counter() - t0, 1000 * stream.latency_seconds)
    return 0


def _file_blocks(args: argparse.Namespace, tok) -> Iterator[np.ndarray]:
    from .. import audio

    size = max(1, round(args.chunk_ms * tok.sample_rate / 1000))
    for block in audio.stream(args.inputs[0], tok.sample_rate, allow_truncated=args.allow_truncated):
        for i in range(0, block.size, size):  # as if it arrived chunk_ms at a time
            yield block[i : i + size]


def _stdin_blocks(chunk_ms: float, sample_rate: int) -> Iterator[np.ndarray]:
    """Raw mono 16-bit little-endian PCM at the tokenizer's rate, `chunk_ms` at a time."""
    size = 2 * max(1, round(chunk_ms * sample_rate / 1000))
    pending = b""
    while data := sys.stdin.buffer.read(size):
        pending += data
        whole = len(pending) - len(pending) % 2
        yield np.frombuffer(pending[:whole], dtype="<i2").astype(np.float32) / 32768.0
        pending = pending[whole:]


def _emit(codes, frames: int, parts: list, output: str | None) -> int:
    """Print each new frame's codes (`frame code_1 ... code_q`) on stdout, or keep them for the codes file."""
    if output:
        parts.append(codes)
    else:
        for t in range(codes.shape[-1]):
            print(frames + t, *codes[0, :, t].tolist(), flush=True)
    return frames + codes.shape[-1]
