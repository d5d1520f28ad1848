"""Small layers shared by encoders and decoders: padded 1-d convolution with a validity mask, weight norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm


def maybe_weight_norm(module: nn.Module, enabled: bool) -> nn.Module:
    return weight_norm(module) if enabled else module


def fold_weight_norm(model: nn.Module) -> nn.Module:
    """Replace every parametrization (weight norm) by the plain tensor it computes; inference needs no hook."""
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def lengths_to_mask(lengths: Tensor, size: int) -> Tensor:
    """lengths [B] -> mask [B, 1, size], 1.0 where a position is valid."""
    steps = torch.arange(size, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1).float()


class PaddedConv1d(nn.Module):
    """Conv1d that pads itself ('same' length for stride 1, T / stride for stride > 1 when T divides)
    and zeroes the output past each item's valid length, so padding in a batch looks like the end of the signal."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 causal: bool = False, norm: bool = True):
        super().__init__()
        self.conv = maybe_weight_norm(nn.Conv1d(in_ch, out_ch, kernel_size, stride, dilation=dilation), norm)
        self.stride = stride
        self.span = (kernel_size - 1) * dilation + 1  # input positions one output position sees
        total = self.span - stride
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x [B, C, T] -> [B, C', T // stride]; lengths [B] are at the output rate."""
        y = self.conv(F.pad(x, self.pad))
        if lengths is not None:
            y = y * lengths_to_mask(lengths, y.shape[-1])
        return y
