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
from ..config import from_dict
from ..layers import lengths_to_mask
from ..quantizers.kmeans import KMeans, KMeansConfig
from ..tokenizer import Tokenizer
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


def hubert_features(tok: Tokenizer, wav: Tensor | np.ndarray, sample_rate: int, layer: int | None = None,
                    lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """HuBERT features of `layer` (default: the units' layer) of a units tokenizer -> ([B, D, T_frames], frames
    [B]), computed as `encode` computes those it quantizes (padding masked, the encoder's own windows)."""
    if not isinstance(tok.encoder, HubertEncoder):
        raise TypeError(f"{tok.name}: not a HuBERT units tokenizer")
    x, num_samples = tok.prepare_input(wav, sample_rate, lengths)
    if lengths is not None:  # zero past each item's end: batch padding must read as silence
        x = x * lengths_to_mask(num_samples.to(x.device), x.shape[-1])
    with torch.inference_mode():
        feats = tok.encoder(x, None if lengths is None else num_samples.to(x.device), layer=layer)
    return feats, tok.num_frames(num_samples)


@register_family("hubert-units", HubertUnitsConfig)
def build_hubert_units(cfg: HubertUnitsConfig, norm: bool = False, name: str | None = None,
                       inference: bool = False) -> Tokenizer:
    decoder = None if cfg.vocoder is None else VocosDecoder(cfg.vocoder)
    return Tokenizer(HubertEncoder(cfg.hubert, cfg.layer, cfg.sample_rate), KMeans(cfg.kmeans), decoder,
                         sample_rate=cfg.sample_rate, family="hubert-units", config=cfg, name=name)


def hubert_units_from(hubert: str | os.PathLike, layer: int, kmeans: str | os.PathLike,
                      name: str | None = None) -> Tokenizer:
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
