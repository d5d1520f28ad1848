"""Multi-codebook patterns: how an utterance's codes [Q, T] become the token ids a speech LM trains on, and back.

| pattern | ids | as in |
|---|---|---|
| `flatten` | bos, then the Q codes of frame 0, of frame 1, ..., eos: 1 + Q T + 1 | VALL-E, SoundStorm, Llasa (Q = 1) |
| `delay` | codebook q shifted right by q frames, pad where empty, then flattened: 2 + Q (T + Q - 1) | MusicGen |
| `parallel` | [Q, T] ids (one row a codebook, at its own offset), for a model with Q heads | Q-head decoders |
| `semantic_first` | the semantic codebook undelayed, the acoustic ones `acoustic_delay` frames late | Moshi |
| `units` | one id a run of repeated units, with the run lengths as `durations` | GSLM, SpeechGPT |

`encode(codes, vocab) -> LMTokens`, `decode(tokens, vocab) -> codes [Q, T]` is the exact inverse, and
`frames(tokens, vocab)` gives the frame of every position (-1 for specials and padding), which `Codes` timing
turns into seconds (`seconds_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from .vocab import LMVocab


@dataclass
class LMTokens:
    ids: np.ndarray  # int64 [N] (sequential patterns) or [Q, T] (parallel)
    num_codebooks: int  # Q of the codes they came from
    durations: np.ndarray | None = None  # units: frames of each run, aligned with ids (0 for bos and eos)


class Pattern:
    name: str

    def encode(self, codes: np.ndarray, vocab: LMVocab) -> LMTokens:
        raise NotImplementedError

    def decode(self, tokens: LMTokens, vocab: LMVocab) -> np.ndarray:
        raise NotImplementedError

    def frames(self, tokens: LMTokens, vocab: LMVocab) -> np.ndarray:
        raise NotImplementedError


def _codes(codes) -> np.ndarray:
    arr = np.asarray(codes, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ArgumentError(f"codes must be one item's [Q, T] with T >= 1, got shape {list(arr.shape)}")
    return arr


def _strip(ids: np.ndarray, vocab: LMVocab) -> np.ndarray:
    """ids without their leading bos and trailing eos (each checked)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) < 2 or ids[0] != vocab.bos or ids[-1] != vocab.eos:
        raise ArgumentError("token ids must start with <bos> and end with <eos>")
    return ids[1:-1]


def _framed(body: np.ndarray, q: int) -> np.ndarray:
    if len(body) % q:
        raise ArgumentError(f"{len(body)} tokens are not whole steps of {q} codebooks")
    return body.reshape(-1, q).T  # [Q, steps]


def _wrap(grid_ids: np.ndarray, vocab: LMVocab) -> np.ndarray:
    """[Q, steps] -> bos, step-major ids, eos."""
    return np.concatenate([[vocab.bos], grid_ids.T.reshape(-1), [vocab.eos]]).astype(np.int64)


class Flatten(Pattern):
    name = "flatten"

    def encode(self, codes, vocab):
        codes = _codes(codes)
        return LMTokens(_wrap(vocab.ids(codes), vocab), codes.shape[0])

    def decode(self, tokens, vocab):
        return vocab.codes(_framed(_strip(tokens.ids, vocab), tokens.num_codebooks))

    def frames(self, tokens, vocab):
        steps = (len(tokens.ids) - 2) // tokens.num_codebooks
        return np.concatenate([[-1], np.repeat(np.arange(steps), tokens.num_codebooks), [-1]])


class Delay(Pattern):
    """Codebook q is shifted right by `delays[q]` steps (MusicGen: q); empty cells are <pad>."""

    name = "delay"

    def delays(self, q: int) -> np.ndarray:
        return np.arange(q)

    def encode(self, codes, vocab):
        codes = _codes(codes)
        q, t = codes.shape
        shift = self.delays(q)
        grid = np.full((q, t + int(shift.max())), vocab.pad, dtype=np.int64)
        ids = vocab.ids(codes)
        for k in range(q):
            grid[k, shift[k] : shift[k] + t] = ids[k]
        return LMTokens(_wrap(grid, vocab), q)

    def decode(self, tokens, vocab):
        grid = _framed(_strip(tokens.ids, vocab), tokens.num_codebooks)
        q = tokens.num_codebooks
        shift = self.delays(q)
        t = grid.shape[1] - int(shift.max())
        if t < 1:
            raise ArgumentError(f"{grid.shape[1]} steps are too few for {q} codebooks delayed by {shift.tolist()}")
        rows = np.stack([grid[k, shift[k] : shift[k] + t] for k in range(q)])
        return vocab.codes(rows)

    def frames(self, tokens, vocab):
        q = tokens.num_codebooks
        steps = (len(tokens.ids) - 2) // q
        step, k = np.divmod(np.arange(steps * q), q)
        frame = step - self.delays(q)[k]
        t = steps - int(self.delays(q).max())
        frame = np.where((frame >= 0) & (frame < t), frame, -1)
        return np.concatenate([[-1], frame, [-1]])


class SemanticFirst(Delay):
    """The semantic codebook (codebook 0 of a hybrid) on time, the acoustic ones `acoustic_delay` frames late, so a
    model predicts the content of a frame before its acoustics (Moshi's acoustic delay)."""

    name = "semantic_first"

    def __init__(self, acoustic_delay: int = 1):
        if acoustic_delay < 0:
            raise ArgumentError(f"acoustic_delay must be >= 0, got {acoustic_delay}")
        self.acoustic_delay = acoustic_delay

    def delays(self, q: int) -> np.ndarray:
        return np.array([0] + [self.acoustic_delay] * (q - 1), dtype=np.int64)


class Parallel(Pattern):
    """[Q, T] ids, each codebook at its own offset: the input of a model with one head per codebook."""

    name = "parallel"

    def encode(self, codes, vocab):
        codes = _codes(codes)
        return LMTokens(vocab.ids(codes), codes.shape[0])

    def decode(self, tokens, vocab):
        return vocab.codes(tokens.ids)

    def frames(self, tokens, vocab):
        return np.arange(np.asarray(tokens.ids).shape[-1])


class Units(Pattern):
    """One codebook (HuBERT units): each run of a repeated unit is one id, its length kept in `durations`."""

    name = "units"

    def encode(self, codes, vocab):
        codes = _codes(codes)
        if codes.shape[0] != 1:
            raise ArgumentError(f"the units pattern is for one codebook; these codes have {codes.shape[0]}")
        row = codes[0]
        starts = np.flatnonzero(np.concatenate([[True], row[1:] != row[:-1]]))
        runs = np.diff(np.concatenate([starts, [len(row)]]))
        ids = np.concatenate([[vocab.bos], vocab.ids(row[starts][None])[0], [vocab.eos]]).astype(np.int64)
        return LMTokens(ids, 1, np.concatenate([[0], runs, [0]]).astype(np.int64))

    def decode(self, tokens, vocab):
        if tokens.durations is None or len(tokens.durations) != len(tokens.ids):
            raise ArgumentError("units tokens need their durations, one per id")
        units = vocab.codes(_strip(tokens.ids, vocab)[None])[0]
        return np.repeat(units, tokens.durations[1:-1])[None]

    def frames(self, tokens, vocab):
        """The first frame of each run."""
        starts = np.concatenate([[0], np.cumsum(tokens.durations[1:-1])[:-1]])
        return np.concatenate([[-1], starts, [-1]])


PATTERNS: dict[str, type[Pattern]] = {p.name: p for p in (Flatten, Delay, SemanticFirst, Parallel, Units)}


def get_pattern(name: str, **options) -> Pattern:
    if name not in PATTERNS:
        raise ArgumentError(f"unknown LM pattern {name!r}; choose one of {', '.join(PATTERNS)}")
    return PATTERNS[name](**options)


def seconds_of(frames: np.ndarray, codes) -> np.ndarray:
    """Frame indices -> start times in seconds, by the codes' timing (NaN for -1)."""
    frames = np.asarray(frames, dtype=np.float64)
    times = (codes.offset + frames * codes.hop_length) / codes.sample_rate
    return np.where(frames >= 0, times, np.nan)
