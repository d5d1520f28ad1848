"""Streaming encode and decode whose output is the offline output: audio pushed in chunks of any size gives, once
flushed, the codes of `Tokenizer.encode` on the whole input, and codes pushed in pieces give the audio of
`Tokenizer.decode`.

    enc = tok.stream_encoder(n_q=8)          # or EncodeStream(tok, n_q=8, step_frames=4)
    for chunk in chunks:                     # mono float32 at tok.sample_rate, any size (1 sample and up)
        codes = enc.push(chunk)              # [1, n_q, frames completed by this chunk] (maybe 0)
    codes = enc.flush()                      # the last frames; the stream can then be `reset()`
    dec = tok.stream_decoder()
    audio = dec.push(codes) ...; dec.flush()

Both cut the stream into the windows the offline path cuts a long input into (`Tokenizer.chunk_seconds`): each
window of `step_frames` frames is computed with the encoder's (decoder's) receptive field of context on both
sides, so a frame is out once the audio (codes) that can change it is in. That look-ahead is the algorithmic
latency: `latency_seconds` (frame + right context). Exactness rests on the chunked offline path being the
one-pass path, which tests/test_invariance.py checks. Tokenizers that window or batch otherwise (HuBERT units,
the hybrid, peers, segmented codecs) cannot stream: one-line `NotStreamableError`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..audio import too_short
from ..codecs.base import MASKED, TOKENIZER_WINDOWS
from ..errors import AudioError, SpeechtokError

if TYPE_CHECKING:  # the tokenizer imports this module (encode_file streams long files through EncodeStream)
    from ..tokenizer import Tokenizer

__all__ = ["DecodeStream", "EncodeStream", "NotStreamableError", "encode_blocker", "frame_windows"]


def frame_windows(num_frames: int, step: int, context: int) -> Iterator[tuple[int, int, int, int]]:
    """Frames [a, b) to keep from a window that runs over frames [s, e), `context` frames wider on each side: how
    the offline path cuts a long input, and so how a stream must."""
    for a in range(0, num_frames, step):
        b = min(a + step, num_frames)
        yield a, b, max(0, a - context), min(num_frames, b + context)


class NotStreamableError(SpeechtokError):
    """A tokenizer whose offline codes or audio a stream cannot reproduce."""


def encode_blocker(tok: Tokenizer) -> str | None:
    """Why a stream cannot give `tok`'s offline codes (None: it can, cut where the offline path cuts a long input;
    finer steps also need `Encoder.finite_context`)."""
    enc = tok.encoder
    if enc.windows != TOKENIZER_WINDOWS or enc.batching != MASKED:
        return "its encoder windows or batches long inputs itself"
    if enc.segments is not None:
        return "it encodes in segments"
    if not math.isfinite(tok.chunk_seconds):
        return "it encodes in one pass"
    return None


class EncodeStream:
    """Audio chunks -> the codes of the frames they complete (see the module doc)."""

    def __init__(self, tok: Tokenizer, n_q: int | None = None, step_frames: int = 1) -> None:
        enc = tok.encoder
        why = encode_blocker(tok)
        if why is not None:
            raise NotStreamableError(f"{tok.name} cannot stream its encoder: {why}")
        if step_frames < 1:
            raise ValueError(f"step_frames must be >= 1, got {step_frames}")
        self.tok, self.n_q, self.step = tok, tok.check_n_q(n_q), int(step_frames)
        if not enc.finite_context and self.step != tok._chunk_frames():
            raise NotStreamableError(f"{tok.name} cannot stream its encoder in steps of {self.step} frames: a "
                                     "recurrent layer reads the whole past (steps of the offline windows, "
                                     f"{tok._chunk_frames()} frames, can)")
        self.hop = tok.hop_length
        self.left = math.ceil(enc.receptive_field / self.hop)  # frames of context behind a window
        self.right = math.ceil(enc.lookahead / self.hop)  # and ahead of it (0 for a causal encoder)
        self.reset()

    @property
    def latency_seconds(self) -> float:
        """How long after a frame's last sample its code is out: the rest of its window and the right context."""
        return (self.step + self.right) * self.hop / self.tok.sample_rate

    def reset(self) -> None:
        self._held = np.zeros(0, np.float32)  # samples [start, ...) still needed
        self._pending: list[np.ndarray] = []  # pushed after them, joined only when a window needs them
        self._pending_size = 0
        self._start = 0
        self._next = 0  # the first frame not yet out
        self._flushed = False

    def push(self, chunk: Tensor | np.ndarray) -> Tensor:
        """chunk [n] (mono, at the tokenizer's rate) -> codes [1, n_q, k] of the k frames it completes."""
        if self._flushed:
            raise RuntimeError("this stream was flushed: reset() it to start another")
        samples = np.asarray(torch.as_tensor(chunk).detach().cpu(), dtype=np.float32).reshape(-1)
        self._pending.append(samples)
        self._pending_size += samples.size
        out = []
        hop, step = self.hop, self.step
        while self._end >= (self._next + step + self.right) * hop:
            a = self._next
            s, b = max(0, a - self.left), a + step
            out.append(self._codes(self._take(s * hop, (b + self.right) * hop), a - s, b - s))
            self._drop(max(0, b - self.left) * hop)
            self._next = b
        return self._cat(out)

    def flush(self) -> Tensor:
        """The end of the stream: the codes [1, n_q, k] of the frames not yet out (the input zero-padded to whole
        frames, as offline)."""
        num_samples, hop = self._end, self.hop
        if (reason := too_short(num_samples, self.tok.sample_rate, hop)) is not None:
            raise AudioError(reason)
        out, num_frames = [], -(-num_samples // hop)
        for a in range(self._next, num_frames, self.step):
            b = min(a + self.step, num_frames)
            s, e = max(0, a - self.left), min(num_frames, b + self.right)
            out.append(self._codes(self._take(s * hop, e * hop), a - s, b - s))
        self._flushed = True
        return self._cat(out)

    @property
    def num_samples(self) -> int:
        """Samples pushed so far."""
        return self._end

    @property
    def _end(self) -> int:
        return self._start + self._held.size + self._pending_size

    def _join(self) -> None:
        if self._pending:
            self._held = np.concatenate([self._held, *self._pending])
            self._pending, self._pending_size = [], 0

    def _take(self, a: int, b: int) -> np.ndarray:
        self._join()
        x = self._held[a - self._start : b - self._start]
        return x if x.size == b - a else np.pad(x, (0, b - a - x.size))

    def _drop(self, before: int) -> None:
        self._join()
        self._held, self._start = self._held[before - self._start :], before

    def _codes(self, x: np.ndarray, a: int, b: int) -> Tensor:
        with torch.inference_mode():
            return self.tok._chunk_codes(x, a, b, self.n_q).cpu()

    def _cat(self, out: list[Tensor]) -> Tensor:
        return torch.cat(out, dim=-1) if out else torch.zeros(1, self.n_q, 0, dtype=torch.long)


class DecodeStream:
    """Codes in pieces -> the audio of the frames whose look-ahead is in (see the module doc)."""

    def __init__(self, tok: Tokenizer, step_frames: int = 1) -> None:
        if tok.decoder is None or tok.decoder.receptive_field_frames >= sys.maxsize:
            raise NotStreamableError(f"{tok.name} cannot stream its decoder: "
                                     f"{'it has none' if tok.decoder is None else 'it decodes in one pass'}")
        if step_frames < 1:
            raise ValueError(f"step_frames must be >= 1, got {step_frames}")
        self.tok, self.step, self.hop = tok, int(step_frames), tok.hop_length
        self.context = tok.decoder.receptive_field_frames
        self.reset()

    @property
    def latency_seconds(self) -> float:
        """How long after a frame's code arrives its audio is out: the rest of its window and the look-ahead."""
        return (self.step + self.context) * self.hop / self.tok.sample_rate

    def reset(self) -> None:
        self._held: Tensor | None = None  # codes [1, q, frames start..end)
        self._start = 0
        self._next = 0
        self._flushed = False

    def push(self, codes: Tensor) -> Tensor:
        """codes [1, q, k] (or [q, k]) -> audio [1, 1, m] of the frames now complete (m a multiple of the hop)."""
        if self._flushed:
            raise RuntimeError("this stream was flushed: reset() it to start another")
        codes = self.tok._check_tokens(codes if codes.ndim == 3 else codes[None])
        if self._held is not None and codes.shape[1] != self._held.shape[1]:
            raise ValueError(f"codes with {codes.shape[1]} codebooks after {self._held.shape[1]}: one q a stream")
        self._held = codes if self._held is None else torch.cat([self._held, codes], dim=-1)
        out = []
        step, context = self.step, self.context
        while self._end >= self._next + step + context:
            a = self._next
            s, b = max(0, a - context), a + step
            out.append(self._audio(s, b + context, a - s, b - s))
            self._drop(max(0, b - context))
            self._next = b
        return self._cat(out)

    def flush(self) -> Tensor:
        """The end of the stream: the audio [1, 1, m] of the frames not yet out."""
        if self._held is None:
            raise ValueError("no codes were pushed")
        out = [self._audio(s, e, a - s, b - s)
               for a, b, s, e in frame_windows(self._end, self.step, self.context) if a >= self._next]
        self._flushed = True
        return self._cat(out)

    @property
    def _end(self) -> int:
        return self._start + (0 if self._held is None else self._held.shape[-1])

    def _drop(self, before: int) -> None:
        assert self._held is not None
        self._held, self._start = self._held[..., before - self._start :], before

    def _audio(self, s: int, e: int, a: int, b: int) -> Tensor:
        """Audio of frames [a, b) of the window over frames [s, e)."""
        assert self._held is not None
        tokens = self._held[..., s - self._start : e - self._start].to(self.tok.device)
        with torch.inference_mode():
            wav = self.tok._decode_frames(tokens)
        return wav[..., a * self.hop : b * self.hop].cpu()

    def _cat(self, out: list[Tensor]) -> Tensor:
        return torch.cat(out, dim=-1) if out else torch.zeros(1, 1, 0)
