"""An exponential moving average of a module's weights, used for export: averaged GAN generator weights give
steadier, usually better audio than the last step's (as in BigVGAN, Vocos, Stable Audio)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """shadow = decay * shadow + (1 - decay) * weight after each optimizer step, from step `start` on (before it,
    the shadow copies the weights: early weights are not worth remembering). Buffers are copied, not averaged:
    they keep their own statistics (RVQ codebooks are already moving averages)."""

    def __init__(self, module: nn.Module, decay: float, start: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.start = decay, start
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.averaged = {k for k, _ in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = self.decay if step >= self.start else 0.0
        for key, value in module.state_dict().items():
            shadow = self.shadow[key]
            if key in self.averaged and decay > 0:
                shadow.lerp_(value.detach(), 1.0 - decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise KeyError(f"EMA state does not match the module: {sorted(missing)[:5]}")
        for key, value in state.items():
            self.shadow[key].copy_(value)

    def copy_to(self, module: nn.Module) -> None:
        """Load the averaged weights into `module` (for export)."""
        module.load_state_dict(self.shadow)
