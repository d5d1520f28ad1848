"""The unit vocoder: the GAN decoder (vocoders/gan.py) trained to speak the units of a frozen units tokenizer
(hubert-units or whisper-units), with the codec's losses (multi-scale mel, then LSGAN + feature matching after
`adversarial_start`).

A crop of T samples gives F units (HuBERT: floor((T - 400) / 320) + 1; Whisper: (T // 160 + 1) // 2, each crop
read as its own 30 s window); the decoder's F x 320 samples are compared with the crop's first F x 320 samples.
With `task_config.unit_codes` (a pre-tokenized dataset of the units model over the training data) the units come
from each whole file instead, as at inference, and cost nothing per step (`training/unit_crops.py`): Whisper's
units depend on the file around a crop. The recipe's `model` section is the decoder's VocosConfig;
`task_config.units` is the units checkpoint whose units it learns to speak.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ...config import from_dict
from ...models import FAMILIES
from ...models.loading import load_checkpoint
from ...tokenizer import Tokenizer
from ...vocoders.discriminators import DiscriminatorConfig
from ...vocoders.gan import VocosConfig, VocosDecoder
from ..data import DataConfig
from ..unit_crops import UnitCropDataset, unit_crop_dataset
from .base import Batch
from .gan import GAN_WEIGHTS, GANTask

UNIT_FAMILIES = ("hubert-units", "whisper-units")  # an encoder, k-means, and a vocoder slot fed with centroids


@dataclass(frozen=True)
class UnitVocoderTaskConfig:
    units: str = "runs/hubert-units"  # a hubert-units / whisper-units checkpoint directory (encoder + k-means)
    unit_codes: str = ""  # a pre-tokenized dataset of `units` over the training data ("": encode each crop)
    loss_weights: dict = field(default_factory=lambda: dict(GAN_WEIGHTS))
    adversarial_start: int = 0
    discriminator_warmup: int = 0  # first steps of a job in which only the (fresh) discriminators learn
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    name: str = "speechtok-hubert-units"


class UnitVocoderTask(GANTask):
    name = "unit_vocoder"

    def __init__(self, model: dict, task_config: dict):
        self.cfg = from_dict(UnitVocoderTaskConfig, task_config)
        self.units = load_checkpoint(self.cfg.units).requires_grad_(False)
        if self.units.family not in UNIT_FAMILIES:
            raise ValueError(f"{self.cfg.units}: a {self.units.family} checkpoint, not {' or '.join(UNIT_FAMILIES)}")
        self.vocoder_cfg = from_dict(VocosConfig, model)
        self.full_cfg = replace(self.units.config, vocoder=self.vocoder_cfg)  # checks dims and hop
        self.generator = VocosDecoder(self.vocoder_cfg)
        super().__init__(self.units.sample_rate, self.cfg.discriminator, self.cfg.adversarial_start,
                         self.cfg.loss_weights, GAN_WEIGHTS, self.cfg.discriminator_warmup)

    def frozen(self) -> dict[str, torch.nn.Module]:
        return {**super().frozen(), "units": self.units}  # eval mode: its units must be those of inference

    def dataset(self, data: DataConfig, seed: int) -> UnitCropDataset | None:
        if not self.cfg.unit_codes:
            return None
        return unit_crop_dataset(self.cfg.unit_codes, self.units, data, seed)

    def unit_latents(self, batch: Batch) -> Tensor:
        """wav [B, 1, T], or (wav, units [B, F]) -> centroids of the units [B, D, F] (what the decoder gets at
        inference)."""
        with torch.no_grad():
            codes = self.units.quantizer.encode(self.units.encoder(batch)) if isinstance(batch, Tensor) \
                else batch[1][:, None]
            return self.units.quantizer.decode(codes)

    def reconstruct(self, batch: Batch) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        wav_hat = self.generator(self.unit_latents(batch))
        wav = batch if isinstance(batch, Tensor) else batch[0]
        return wav_hat, wav[..., : wav_hat.shape[-1]], {}

    def init_from(self, checkpoint_dir) -> None:
        """Start from the vocoder of another units checkpoint (new units of a next HuBERT iteration: the
        decoder adapts instead of starting over)."""
        other = load_checkpoint(checkpoint_dir)
        decoder = getattr(other, "decoder", None)
        if not isinstance(decoder, VocosDecoder) or decoder.cfg != self.vocoder_cfg:
            raise ValueError(f"{checkpoint_dir}: no unit vocoder of this recipe's model config")
        self.generator.load_state_dict(decoder.state_dict())

    def export(self) -> Tokenizer:
        tok = FAMILIES[self.units.family].build(self.full_cfg, name=self.cfg.name)
        tok.encoder.load_state_dict(copy.deepcopy(self.units.encoder).cpu().state_dict())
        tok.quantizer.load_state_dict(copy.deepcopy(self.units.quantizer).cpu().state_dict())
        tok.decoder.load_state_dict(copy.deepcopy(self.generator).cpu().state_dict())
        return tok.eval()
