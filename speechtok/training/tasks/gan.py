"""What every waveform-generating task shares (codec, hybrid, unit vocoder): a generator whose audio is compared
with the input by multi-scale mel loss and, from `adversarial_start` on, by multi-period + multi-resolution STFT
discriminators (LSGAN + feature matching). A subclass says how a batch becomes audio (`reconstruct`)."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from ...vocoders.discriminators import DiscriminatorConfig, Discriminators
from ...vocoders.losses import MultiScaleMelLoss, discriminator_losses, generator_losses
from .base import Task, Update

GAN_WEIGHTS = {"gan/mel": 15.0, "gan/adv_g": 1.0, "gan/feature": 2.0}  # DAC's


class GANTask(Task):
    generator: nn.Module

    def __init__(self, sample_rate: int, discriminator: DiscriminatorConfig, adversarial_start: int,
                 loss_weights: dict, defaults: dict):
        self.discriminator = Discriminators(discriminator)
        self.mel_loss = MultiScaleMelLoss(sample_rate)
        self.adversarial_start = adversarial_start
        unknown = sorted(set(loss_weights) - set(defaults))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; known: {sorted(defaults)}")
        self.weights = {**defaults, **loss_weights}

    @abstractmethod
    def reconstruct(self, batch: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """batch [B, 1, T] -> (generated audio, the target it is compared with, the generator's own losses)."""

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def frozen(self) -> dict[str, nn.Module]:
        return {"mel_loss": self.mel_loss}

    def step(self, batch: Tensor, step: int, update: Update) -> dict[str, float]:
        wav_hat, wav, losses = self.reconstruct(batch)
        logs: dict[str, float] = {}
        if step >= self.adversarial_start:
            d_losses = discriminator_losses(self.discriminator(wav), self.discriminator(wav_hat.detach()))
            update("discriminator", d_losses["gan/adv_d"])
            logs.update({k: v.item() for k, v in d_losses.items()})
            self.discriminator.requires_grad_(False)  # the generator step needs no discriminator grads
            with torch.no_grad():  # real features after the discriminator's update, as targets
                real = self.discriminator(wav)
            losses.update(generator_losses(wav_hat, wav, real, self.discriminator(wav_hat), self.mel_loss))
            self.discriminator.requires_grad_(True)
        else:
            losses["gan/mel"] = self.mel_loss(wav_hat, wav)
        total = sum(self.weights[k] * v for k, v in losses.items())
        update("generator", total)
        logs.update({k: v.item() for k, v in losses.items()})  # one sync per step; logs need the values anyway
        logs["loss/generator"] = total.item()
        return logs
