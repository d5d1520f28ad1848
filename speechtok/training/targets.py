"""Frame targets for HuBERT pre-training, on HuBERT's frame grid (frame i = samples [320 i, 320 i + 400)).

Iteration 1 predicts k-means clusters of MFCCs (`MFCC` + `KMeansTargets`); iteration 2 the units of an iteration-1
model (`UnitTargets`, a hubert-units checkpoint whose k-means was fitted on its features). Units of another model
computed once per file (`GridUnits`: Whisper's, from a pre-tokenized dataset) are moved onto HuBERT's grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..layers.mel import mel_filterbank
from ..quantizers.kmeans import KMeans, KMeansConfig

HUBERT_HOP, HUBERT_WINDOW = 320, 400  # frame i = samples [320 i, 320 i + 400)


def dct_matrix(n_mfcc: int, n_mels: int) -> Tensor:
    """Orthonormal DCT-II [n_mfcc, n_mels] (scipy's dct(type=2, norm="ortho") rows)."""
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    n = torch.arange(n_mels, dtype=torch.float64)[None]
    m = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    m[0] /= math.sqrt(2.0)
    return m.float()


def deltas(x: Tensor, width: int = 2) -> Tensor:
    """Regression deltas over time of x [B, C, T] (edges repeated), as HTK / Kaldi with window +-width."""
    denom = 2 * sum(i * i for i in range(1, width + 1))
    padded = F.pad(x, (width, width), mode="replicate")
    t = x.shape[-1]
    return sum(i * (padded[..., width + i : width + i + t] - padded[..., width - i : width - i + t])
               for i in range(1, width + 1)) / denom


class MFCC(nn.Module):
    """wav [B, 1, T] -> MFCC + deltas + delta-deltas [B, 3 n_mfcc, floor((T - 400) / 320) + 1]: 25 ms windows on
    HuBERT's 20 ms grid, 40 mel bands, log, DCT; each item mean- and variance-normalised over its frames (CMVN),
    so that loudness and channel do not dominate the k-means distances."""

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 13, n_mels: int = 40, window: int = 400,
                 hop: int = 320, cmvn: bool = True):
        super().__init__()
        self.window, self.hop, self.cmvn = window, hop, cmvn
        self.register_buffer("hann", torch.hann_window(window), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, window, n_mels), persistent=False)
        self.register_buffer("dct", dct_matrix(n_mfcc, n_mels), persistent=False)

    @property
    def dim(self) -> int:
        return 3 * self.dct.shape[0]

    def forward(self, wav: Tensor) -> Tensor:
        x = rearrange(wav, "b 1 t -> b t") if wav.ndim == 3 else wav
        spec = torch.stft(x, self.window, self.hop, window=self.hann, center=False, return_complex=True)
        mel = torch.einsum("mf,bft->bmt", self.filters, spec.abs() ** 2)
        c = torch.einsum("km,bmt->bkt", self.dct, torch.log(mel + 1e-6))
        d = deltas(c)
        feats = torch.cat([c, d, deltas(d)], dim=1)
        if self.cmvn:
            feats = (feats - feats.mean(-1, keepdim=True)) / (feats.std(-1, keepdim=True) + 1e-5)
        return feats


class KMeansTargets(nn.Module):
    """Any frame features (e.g. MFCC) -> the index of the nearest centroid: wav [B, 1, T] -> [B, T']."""

    def __init__(self, features: nn.Module, centroids: Tensor):
        super().__init__()
        self.features = features
        self.kmeans = KMeans(KMeansConfig(dim=centroids.shape[1], codebook_size=centroids.shape[0]))
        self.kmeans.centroids.copy_(centroids)

    @property
    def num_classes(self) -> int:
        return self.kmeans.codebook_size

    @torch.no_grad()
    def forward(self, wav: Tensor) -> Tensor:
        return self.kmeans.encode(self.features(wav))[:, 0]


class UnitTargets(nn.Module):
    """The units of a (frozen) hubert-units tokenizer: wav [B, 1, T] -> [B, T']."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer.eval().requires_grad_(False)

    @property
    def num_classes(self) -> int:
        return self.tokenizer.codebook_size

    @torch.no_grad()
    def forward(self, wav: Tensor) -> Tensor:
        return self.tokenizer.quantizer.encode(self.tokenizer.encoder(wav))[:, 0]


class GridUnits(nn.Module):
    """Units of another 50 Hz model, computed elsewhere (each file's, `training/unit_crops.py`), on HuBERT's grid:
    for HuBERT frame i (centred on sample 320 i + 200) the unit whose frame is centred nearest. The source's frame
    j is centred on `hop x j + frame_offset + hop / 2` (Whisper units: 320 j, so frame i + 1, 120 samples away)."""

    def __init__(self, num_classes: int, hop_length: int, frame_offset: int):
        super().__init__()
        if hop_length != HUBERT_HOP:
            raise ValueError(f"units every {hop_length} samples are not on HuBERT's {HUBERT_HOP}-sample grid")
        self.num_classes = num_classes
        self.units_model: list = []  # the model the units came from, when known (not a submodule: frozen, unsaved)
        centre = frame_offset + hop_length / 2
        self.shift = round((HUBERT_WINDOW / 2 - centre) / hop_length)

    def forward(self, units: Tensor, frames: int) -> Tensor:
        """units [B, F] of a crop's frames -> [B, frames] (the last unit repeated where the shift runs past F)."""
        index = (torch.arange(frames, device=units.device) + self.shift).clamp(0, units.shape[1] - 1)
        return units[:, index]
