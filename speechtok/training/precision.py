"""Mixed precision for the training loop: `auto` (bf16 on a GPU that has it, else fp32), `fp32` (off), `bf16`
autocast (no loss scaling needed), or `fp16` autocast with a dynamic loss scaler. The spectral parts (STFT, ISTFT,
log-mel) run in float32 whatever the setting (see `speechtok.layers.autocast_off`); weights and optimizer states stay
float32."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name not in DTYPES:
        raise ValueError(f"train.precision must be auto or one of {', '.join(DTYPES)}, got {name!r}")
    return name


class Precision:
    def __init__(self, name: str, device: torch.device):
        name = resolve(name, device)
        self.name, self.device, self.dtype = name, device, DTYPES[name]
        # fp16's narrow exponent underflows small gradients: scale the loss up, unscale before clipping
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step; under fp16 it is skipped when the gradients overflowed (the scale then drops)."""
        if self.scaler:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per training step, after every group's optimizer stepped."""
        if self.scaler:
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)
