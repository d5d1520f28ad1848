"""The codec task: SEANet encoder + RVQ + GAN decoder trained with multi-scale mel reconstruction,
commitment, and (after a warm-up of `adversarial_start` steps) LSGAN adversarial + feature-matching losses."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ...checkpoint import load_checkpoint
from ...config import from_dict
from ...families import CodecConfig, build_codec
from ...nn import fold_weight_norm
from ...tokenizer import Tokenizer
from ...vocoders.discriminators import DiscriminatorConfig, Discriminators
from ...vocoders.losses import MultiScaleMelLoss, discriminator_losses, generator_losses
from .base import Task, Update

DEFAULT_WEIGHTS = {"gan/mel": 15.0, "gan/adv_g": 1.0, "gan/feature": 2.0, "vq/commitment": 1.0}  # DAC's


@dataclass(frozen=True)
class CodecTaskConfig:
    loss_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    adversarial_start: int = 0  # steps of reconstruction-only training before the discriminators join
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    name: str = "speechtok-codec"


class CodecTask(Task):
    def __init__(self, model: dict, task_config: dict):
        self.cfg = from_dict(CodecTaskConfig, task_config)
        self.model_cfg = from_dict(CodecConfig, model)
        self.generator = build_codec(self.model_cfg, norm=True, name=self.cfg.name)
        self.discriminator = Discriminators(self.cfg.discriminator)
        self.mel_loss = MultiScaleMelLoss(self.model_cfg.sample_rate)
        unknown = sorted(set(self.cfg.loss_weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; known: {sorted(DEFAULT_WEIGHTS)}")
        self.weights = {**DEFAULT_WEIGHTS, **self.cfg.loss_weights}

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def to(self, device) -> CodecTask:
        super().to(device)
        self.mel_loss.to(device)
        return self

    def step(self, batch: Tensor, step: int, update: Update) -> dict[str, float]:
        gen = self.generator
        q = gen.quantizer(gen.encoder(batch))
        wav_hat = gen.decoder(q.z_q)[..., : batch.shape[-1]]
        adversarial = step >= self.cfg.adversarial_start
        logs: dict[str, float] = {}
        if adversarial:
            d_losses = discriminator_losses(self.discriminator(batch), self.discriminator(wav_hat.detach()))
            update("discriminator", d_losses["gan/adv_d"])
            logs.update({k: v.item() for k, v in d_losses.items()})
        losses = dict(q.losses)
        if adversarial:
            self.discriminator.requires_grad_(False)  # the generator step needs no discriminator grads
            with torch.no_grad():  # real features after the discriminator's update, as targets
                real = self.discriminator(batch)
            losses.update(generator_losses(wav_hat, batch, real, self.discriminator(wav_hat), self.mel_loss))
            self.discriminator.requires_grad_(True)
        else:
            losses["gan/mel"] = self.mel_loss(wav_hat, batch)
        total = sum(self.weights[k] * v for k, v in losses.items())
        update("generator", total)
        logs.update({k: v.item() for k, v in losses.items()})  # one sync per step; logs need the values anyway
        logs["loss/generator"] = total.item()
        return logs

    def init_from(self, checkpoint_dir: Path) -> None:
        """Load an exported (folded) checkpoint into the weight-normed generator: assigning a plain weight to a
        weight-norm parametrization sets its magnitude and direction from it."""
        plain = load_checkpoint(checkpoint_dir)
        if plain.config_hash != self.generator.config_hash:
            raise ValueError(f"{checkpoint_dir}: config {plain.config_hash} is not this recipe's model "
                             f"({self.generator.config_hash})")
        plain_modules = dict(plain.named_modules())
        with torch.no_grad():
            for name, module in self.generator.named_modules():
                if parametrize.is_parametrized(module, "weight"):
                    module.weight = plain_modules[name].weight.detach().to(module.weight.device)  # via right_inverse
            state = {k: v for k, v in plain.state_dict().items() if k in self.generator.state_dict()}
            self.generator.load_state_dict(state, strict=False)

    def export(self) -> Tokenizer:
        tok = copy.deepcopy(self.generator).cpu()
        return fold_weight_norm(tok).eval()
