"""The hubert-units family: HuBERT features of one layer -> k-means units [B, 1, T] -> unit vocoder.

Timing differs from the conv codecs: T samples give floor((T - 400) / 320) + 1 frames (frame i reads samples
[320 i, 320 i + 400), so `Codes.offset` = 40 puts frame centres at 320 i + 200). Decoding gives 320 samples per
frame from sample 0, zero-padded to the original length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..codecs.hubert import HubertConfig, HubertEncoder
from ..codes import Codes
from ..config import from_dict
from ..layers import lengths_to_mask
from ..quantizers.kmeans import KMeans, KMeansConfig
from ..tokenizer import Tokenizer
from ..vocoders.base import Decoder
from ..vocoders.gan import VocosConfig, VocosDecoder
from .registry import register_family


@dataclass(frozen=True)
class HubertUnitsConfig:
    """HuBERT units: the features of one HuBERT layer, k-means (one codebook), and an optional unit vocoder
    (the GAN decoder fed with the centroid of each unit)."""

    sample_rate: int = 16000
    hubert: HubertConfig = field(default_factory=HubertConfig)
    layer: int = 4  # hidden state index: 0 = transformer input, i = output of layer i
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    vocoder: VocosConfig | None = None

    def __post_init__(self):
        if isinstance(self.vocoder, dict):  # from config.json: an optional nested config
            object.__setattr__(self, "vocoder", from_dict(VocosConfig, self.vocoder))
        if not 0 <= self.layer <= self.hubert.num_hidden_layers:
            raise ValueError(f"layer {self.layer} is out of range 0..{self.hubert.num_hidden_layers}")
        if self.kmeans.dim != self.hubert.hidden_size:
            raise ValueError(f"k-means dim {self.kmeans.dim} != HuBERT hidden_size {self.hubert.hidden_size}")
        if self.vocoder is not None and (self.vocoder.input_dim != self.hubert.hidden_size
                                         or self.vocoder.hop_length != self.hubert.hop_length):
            raise ValueError(f"vocoder input_dim {self.vocoder.input_dim} / hop {self.vocoder.hop_length} do not fit "
                             f"HuBERT ({self.hubert.hidden_size} / {self.hubert.hop_length})")


class UnitTokenizer(Tokenizer):
    encoder: HubertEncoder
    quantizer: KMeans

    def __init__(self, encoder: HubertEncoder, quantizer: KMeans, decoder: Decoder | None, **kwargs):
        super().__init__(encoder, quantizer, decoder, **kwargs)

    @property
    def layer(self) -> int:
        return self.encoder.layer

    def num_frames(self, num_samples: Tensor) -> Tensor:
        """[B] samples -> [B] frames: floor((T - 400) / 320) + 1."""
        return self.encoder.num_frames(torch.as_tensor(num_samples))

    def features(self, wav: Tensor | np.ndarray, sample_rate: int, layer: int | None = None,
                 lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """HuBERT features of `layer` (default: the units' layer) -> ([B, D, T_frames], frames [B])."""
        x, num_samples = self._input(wav, sample_rate, lengths, self.encoder.model.cfg.window, "HuBERT frame")
        return self._features(x, num_samples if lengths is not None else None, layer), self.num_frames(num_samples)

    def _features(self, x: Tensor, num_samples: Tensor | None, layer: int | None = None) -> Tensor:
        """x [B, 1, T] (a padded batch when `num_samples` are given) -> [B, D, T_frames]"""
        if num_samples is not None:  # zero past each item's end: batch padding must read as silence
            x = x * lengths_to_mask(num_samples.to(x.device), x.shape[-1])
        with torch.inference_mode():
            return self.encoder(x, None if num_samples is None else num_samples.to(x.device), layer=layer)

    def encode(self, wav: Tensor | np.ndarray, sample_rate: int, n_q: int | None = None,
               lengths: Tensor | None = None) -> Codes:
        """wav [T], [C, T] or [B, C, T] -> Codes [B, 1, floor((T - 400) / 320) + 1], offset 40 samples."""
        self._check_n_q(n_q)
        x, num_samples = self._input(wav, sample_rate, lengths, self.encoder.model.cfg.window, "HuBERT frame")
        feats = self._features(x, num_samples if lengths is not None else None)
        with torch.inference_mode():
            codes = self.quantizer.encode(feats)
        return Codes(codes=codes.cpu(), lengths=self.num_frames(num_samples).cpu(), sample_rate=self.sample_rate,
                     hop_length=self.hop_length, num_samples=num_samples.cpu(), offset=self.encoder.offset,
                     tokenizer=self.identity())

    def decode(self, codes: Codes | Tensor, *, steps: int | None = None, method: str | None = None) -> Tensor:
        """Codes [B, 1, T] -> wav [B, 1, T_samples] through the unit vocoder; zero-padded to the original length
        (the last < 400 samples of a file have no frame of their own). `steps` / `method` as `Tokenizer.decode`."""
        wav = super().decode(codes, steps=steps, method=method)
        if isinstance(codes, Codes) and codes.num_samples is not None:
            wav = torch.nn.functional.pad(wav, (0, max(0, int(codes.num_samples.max()) - wav.shape[-1])))
        return wav


@register_family("hubert-units", HubertUnitsConfig)
def build_hubert_units(cfg: HubertUnitsConfig, norm: bool = False, name: str | None = None,
                       inference: bool = False) -> UnitTokenizer:
    decoder = None if cfg.vocoder is None else VocosDecoder(cfg.vocoder)
    return UnitTokenizer(HubertEncoder(cfg.hubert, cfg.layer, cfg.sample_rate), KMeans(cfg.kmeans), decoder,
                         sample_rate=cfg.sample_rate, family="hubert-units", config=cfg, name=name)


def hubert_units_from(hubert: str | os.PathLike, layer: int, kmeans: str | os.PathLike,
                      name: str | None = None) -> UnitTokenizer:
    """A units tokenizer (no vocoder) from checkpoints users have: a HuBERT (Hugging Face directory or fairseq
    `.pt`) and k-means centroids (`.safetensors` or `.npy`; joblib files through `speechtok convert`)."""
    from ..codecs.hubert_loading import load_hubert
    from ..quantizers.kmeans import load_centroids

    model = load_hubert(hubert)
    centroids, _ = load_centroids(kmeans)
    cfg = HubertUnitsConfig(hubert=model.cfg, layer=layer,
                            kmeans=KMeansConfig(dim=centroids.shape[1], codebook_size=centroids.shape[0]))
    tok = build_hubert_units(cfg, name=name)
    tok.encoder.model.load_state_dict(model.state_dict())
    tok.quantizer.centroids.copy_(centroids)
    return tok.eval()
