"""The codec task: SEANet encoder + RVQ + GAN decoder trained with multi-scale mel reconstruction,
commitment, and (after a warm-up of `adversarial_start` steps) LSGAN adversarial + feature-matching losses."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from ...config import from_dict
from ...layers import fold_weight_norm
from ...models import FAMILIES
from ...models.loading import load_checkpoint
from ...tokenizer import Tokenizer
from ...vocoders.discriminators import DiscriminatorConfig
from .gan import GAN_WEIGHTS, GANTask

DEFAULT_WEIGHTS = {**GAN_WEIGHTS, "vq/commitment": 1.0}


@dataclass(frozen=True)
class CodecTaskConfig:
    loss_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    adversarial_start: int = 0  # steps of reconstruction-only training before the discriminators join
    discriminator_warmup: int = 0  # first steps of a job in which only the (fresh) discriminators learn
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    name: str = "speechtok-codec"


class CodecTask(GANTask):
    """Trains a whole tokenizer of family `family` (the recipe's `model` section is its config)."""

    name = "codec"

    family = "codec"
    config_cls = CodecTaskConfig
    default_weights = DEFAULT_WEIGHTS

    def __init__(self, model: dict, task_config: dict):
        self.cfg = from_dict(self.config_cls, task_config)
        family = FAMILIES[self.family]
        self.model_cfg = from_dict(family.config_cls, model)
        self.generator = family.build(self.model_cfg, norm=True, name=self.cfg.name)
        super().__init__(self.model_cfg.sample_rate, self.cfg.discriminator, self.cfg.adversarial_start,
                         self.cfg.loss_weights, self.default_weights, self.cfg.discriminator_warmup)

    def reconstruct(self, batch: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        gen = self.generator
        q = gen.quantizer(gen.encoder(batch))
        self.step_stats = q.stats
        return gen.decoder(q.z_q)[..., : batch.shape[-1]], batch, dict(q.losses)

    def init_from(self, checkpoint_dir: Path) -> None:
        """Load an exported (folded) checkpoint into the weight-normed generator: assigning a plain weight to a
        weight-norm parametrization sets its magnitude and direction from it."""
        plain = load_checkpoint(checkpoint_dir)
        skip = self.init_skips(plain, checkpoint_dir)
        plain_modules = dict(plain.named_modules())
        with torch.no_grad():
            for name, module in self.generator.named_modules():
                if parametrize.is_parametrized(module, "weight") and not name.startswith(skip):
                    module.weight = plain_modules[name].weight.detach().to(module.weight.device)  # via right_inverse
            state = {k: v for k, v in plain.state_dict().items()
                     if k in self.generator.state_dict() and not k.startswith(skip)}
            self.generator.load_state_dict(state, strict=False)

    def init_skips(self, plain: Tokenizer, checkpoint_dir: Path) -> tuple[str, ...]:
        """The generator modules (name prefixes) that start fresh rather than from `plain`; a ValueError where
        `plain` is another model."""
        if plain.config_hash != self.generator.config_hash:
            raise ValueError(f"{checkpoint_dir}: config {plain.config_hash} is not this recipe's model "
                             f"({self.generator.config_hash})")
        return ()

    def export(self) -> Tokenizer:
        tok = copy.deepcopy(self.generator).cpu()
        return fold_weight_norm(tok).eval()
