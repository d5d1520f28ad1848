"""Frame-level features with exact timing, for ABX: from a tokenizer's codes, from its encoder's continuous
latent, or MFCCs (a model-free baseline).

Timing: frame i covers samples [offset + i * hop, offset + (i + 1) * hop) at `sample_rate`, so its centre is at
(offset + (i + 0.5) * hop) / sample_rate seconds. Codes carry their hop and offset (`Codes.frame_times`); a
HuBERT-style encoder whose frame i reads samples [320 i, 320 i + 400) has hop 320 and offset 40 (centre 320 i + 200),
so its floor((T - 400) / 320) + 1 frames map to time without assuming "50 x seconds".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

__all__ = ["FrameFeatures", "codes_to_features", "latent_features", "mfcc_features", "extractor"]


@dataclass(frozen=True)
class FrameFeatures:
    features: np.ndarray  # [T_frames, D] float32
    sample_rate: int
    hop_length: int  # samples per frame
    offset: int = 0  # sample where frame 0 starts (may be negative: centred analysis windows)

    @property
    def num_frames(self) -> int:
        return self.features.shape[0]

    def frame_centres(self) -> np.ndarray:
        """[T_frames] centre of each frame, in seconds."""
        return (self.offset + (np.arange(self.num_frames) + 0.5) * self.hop_length) / self.sample_rate

    def segment(self, onset_s: float, offset_s: float) -> np.ndarray:
        """Features of the frames whose centre lies in [onset_s, offset_s) -> [n, D]; a segment shorter than a
        frame gets the one frame that holds its midpoint (clamped to the file)."""
        centres = self.frame_centres()
        keep = (centres >= onset_s) & (centres < offset_s)
        if keep.any():
            return self.features[keep]
        mid = (onset_s + offset_s) / 2 * self.sample_rate
        i = min(max(int(math.floor((mid - self.offset) / self.hop_length)), 0), self.num_frames - 1)
        return self.features[i : i + 1]


def codes_to_features(tok, codes, layers: int | Sequence[int] = 1) -> FrameFeatures:
    """Codes -> the codebook embeddings of their frames, for distances between codes.

    `codes` is a `Codes` (item 0 is used, trimmed to its length) or an integer tensor `[Q, T]` / `[1, Q, T]`
    made by `tok`. `layers`:

    - an int n: the sum of the first n codebooks' vectors, projected out: `tok.quantizer.decode(codes[:, :n])`,
      the latent the decoder receives from n codebooks ([T, D]);
    - a sequence of 1-based layers, e.g. `[1]` for "layer 1 only": the sum of those layers' own codebook vectors
      (`tok.quantizer.codebooks`, in the codebook space, [T, codebook_dim]).

    Why embeddings and not code identity: a 0/1 distance ("same code or not") treats every pair of different
    codes as equally far apart, though a quantizer with 1024 entries routinely gives two renditions of one
    sound different but neighbouring codes; the embedding keeps the geometry the quantizer learned, is exactly
    what the decoder sees, and puts codes on the same footing as continuous features (angular distance, DTW).
    """
    from ..codes import Codes

    if isinstance(codes, Codes):
        item = codes.item(0)
        tokens, sample_rate, hop, offset = item.codes, item.sample_rate, item.hop_length, item.offset
    else:
        tokens = torch.as_tensor(codes)
        tokens = tokens[None] if tokens.ndim == 2 else tokens
        sample_rate, hop, offset = tok.sample_rate, tok.hop_length, 0
    if tokens.ndim != 3 or tokens.shape[0] != 1:
        raise ValueError(f"codes must be one item [Q, T] or [1, Q, T], got shape {tuple(tokens.shape)}")
    tokens = tokens.long().to(tok.device)
    with torch.inference_mode():
        if isinstance(layers, int):
            if not 1 <= layers <= tokens.shape[1]:
                raise ValueError(f"layers={layers}: the codes have {tokens.shape[1]} codebooks")
            emb = rearrange(tok.quantizer.decode(tokens[:, :layers]), "1 d t -> t d")
        else:
            chosen = [int(layer) for layer in layers]
            if not chosen or not all(1 <= layer <= tokens.shape[1] for layer in chosen):
                raise ValueError(f"layers={chosen}: choose 1-based layers among the codes' {tokens.shape[1]}")
            books = getattr(tok.quantizer, "codebooks", None)
            if books is None:
                raise ValueError(f"{type(tok.quantizer).__name__} has no codebooks: give layers as an int")
            emb = sum(books[layer - 1][tokens[0, layer - 1]] for layer in chosen)  # [T, codebook_dim]
    return FrameFeatures(emb.float().cpu().numpy(), sample_rate, hop, offset)


def latent_features(tok, wav: Tensor | np.ndarray, sample_rate: int) -> FrameFeatures:
    """The encoder's continuous output (before quantization) of mono `wav` at `sample_rate` -> [T, D] features,
    one frame per hop, frame 0 at the encoder's `offset` (0 for the codecs, whose whole-frame padding is
    `Tokenizer.encode`'s; 40 samples for HuBERT's 400-sample windows)."""
    from .. import audio

    x = audio.prepare(wav, sample_rate, tok.sample_rate).to(tok.device)  # [1, 1, T]
    frames = -(-x.shape[-1] // tok.hop_length)
    x = torch.nn.functional.pad(x, (0, frames * tok.hop_length - x.shape[-1]))
    with torch.inference_mode():
        z = tok.encoder(x)  # [1, D, frames]
    return FrameFeatures(rearrange(z[0], "d t -> t d").float().cpu().numpy(), tok.sample_rate, tok.hop_length,
                         tok.encoder.frame_offset)


def mfcc_features(wav: np.ndarray, sample_rate: int, n_mfcc: int = 13) -> FrameFeatures:
    """MFCCs with deltas and delta-deltas ([T, 3 n_mfcc]), mean- and variance-normalised per utterance:
    25 ms windows, 10 ms hop, centred (frame i is centred on sample i * hop), librosa's mel filters."""
    import librosa

    y = np.asarray(wav, dtype=np.float32).reshape(-1)
    hop = round(0.010 * sample_rate)
    n_fft = round(0.025 * sample_rate)
    mfcc = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop, center=True,
                                n_mels=40 if sample_rate > 8000 else 26)
    width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2)) if mfcc.shape[1] >= 3 else 0
    if width >= 3:
        feats = np.concatenate([mfcc, librosa.feature.delta(mfcc, width=width),
                                librosa.feature.delta(mfcc, order=2, width=width)])
    else:
        feats = np.concatenate([mfcc, np.zeros_like(mfcc), np.zeros_like(mfcc)])
    feats = (feats - feats.mean(axis=1, keepdims=True)) / (feats.std(axis=1, keepdims=True) + 1e-8)
    return FrameFeatures(np.ascontiguousarray(feats.T, dtype=np.float32), sample_rate, hop, -(hop // 2))


def extractor(spec: str, kind: str = "codes", layers: int | Sequence[int] = 1, device: str | None = None):
    """A feature function `(wav [T] float32, sample_rate) -> FrameFeatures` by name: `mfcc`, or a tokenizer
    (anything `speechtok.load` takes) with `kind` "codes" (`codes_to_features` with `layers`) or "latent" (the
    encoder's output before quantization). Returns (function, description)."""
    if spec == "mfcc":
        return mfcc_features, "MFCC 13 + deltas + delta-deltas, per-utterance CMVN, 25 ms / 10 ms"
    from ..registry import load

    tok = load(spec, device=device)
    if kind == "latent":
        return (lambda wav, sr: latent_features(tok, wav, sr)), f"{tok.name}: encoder output before quantization"
    if kind != "codes":
        raise ValueError(f"feature kind must be 'codes' or 'latent', got {kind!r}")
    n_q = layers if isinstance(layers, int) else max(layers)
    what = f"first {layers} codebooks (quantizer.decode)" if isinstance(layers, int) else \
        f"codebook vectors of layers {list(layers)}"
    return (lambda wav, sr: codes_to_features(tok, tok.encode(wav, sr, n_q=n_q), layers)), f"{tok.name}: codes, {what}"
