"""What every waveform-generating task shares (codec, hybrid, unit vocoder): a generator whose audio is compared
with the input by multi-scale mel loss and, from `adversarial_start` on, by multi-period + multi-resolution STFT
discriminators (LSGAN + feature matching). A subclass says how a batch becomes audio (`reconstruct`).

A job that starts from trained generator weights (`train.init_from`) starts with fresh discriminators: for its
first `discriminator_warmup` steps only they learn, on the frozen generator's audio (in eval mode, so the
quantizer's codebooks stay as they are), so that the generator's first adversarial gradients come from critics
that already tell real from generated."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from ...vocoders.discriminators import DiscriminatorConfig, Discriminators
from ...vocoders.losses import ComplexSTFTLoss, MultiScaleMelLoss, discriminator_losses, generator_losses
from .base import Batch, Task, Update

# DAC's; the phase-aware complex STFT term is off unless a recipe weights it (it is then computed every step)
GAN_WEIGHTS = {"gan/mel": 15.0, "gan/adv_g": 1.0, "gan/feature": 2.0, "gan/complex_stft": 0.0}


class GANTask(Task):
    generator: nn.Module

    def __init__(self, sample_rate: int, discriminator: DiscriminatorConfig, adversarial_start: int,
                 loss_weights: dict, defaults: dict, discriminator_warmup: int = 0):
        self.discriminator = Discriminators(discriminator)
        self.mel_loss = MultiScaleMelLoss(sample_rate)
        self.adversarial_start = adversarial_start
        if discriminator_warmup < 0:
            raise ValueError(f"discriminator_warmup must be >= 0, got {discriminator_warmup}")
        self.discriminator_warmup = discriminator_warmup
        unknown = sorted(set(loss_weights) - set(defaults))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; known: {sorted(defaults)}")
        self.weights = {**defaults, **loss_weights}
        self.complex_stft = ComplexSTFTLoss() if self.weights.get("gan/complex_stft", 0.0) > 0 else None
        self.step_stats: dict[str, float] = {}  # what `reconstruct` measured of this step, logged beside losses

    @abstractmethod
    def reconstruct(self, batch: Batch) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """batch [B, 1, T] (or a tuple that starts with it) -> (generated audio, the target it is compared with,
        the generator's own losses)."""

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def frozen(self) -> dict[str, nn.Module]:
        frozen = {"mel_loss": self.mel_loss}
        if self.complex_stft is not None:
            frozen["complex_stft"] = self.complex_stft
        return frozen

    def step(self, batch: Batch, step: int, update: Update) -> dict[str, float]:
        if step < self.discriminator_warmup:
            return self.warm_discriminator(batch, update)
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
        if self.complex_stft is not None:
            losses["gan/complex_stft"] = self.complex_stft(wav_hat, wav)
        total = sum(self.weights[k] * v for k, v in losses.items())
        update("generator", total)
        logs.update({k: v.item() for k, v in losses.items()})  # one sync per step; logs need the values anyway
        logs["loss/generator"] = total.item()
        logs.update(self.step_stats)
        return logs

    def warm_discriminator(self, batch: Batch, update: Update) -> dict[str, float]:
        """A discriminator-only step on the frozen generator's audio."""
        self.generator.eval()
        with torch.no_grad():
            wav_hat, wav, _ = self.reconstruct(batch)
        self.generator.train()
        d_losses = discriminator_losses(self.discriminator(wav), self.discriminator(wav_hat))
        update("discriminator", d_losses["gan/adv_d"])
        return {k: v.item() for k, v in d_losses.items()}
