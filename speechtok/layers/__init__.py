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
    """Replace every parametrization (weight norm) by the plain tensor it computes; inference needs no hook.

    Safe on a deep copy: a copy shares its original's generated `Parametrized*` class, from which torch's
    `remove_parametrizations` deletes the property (breaking the original), so each module here just goes back
    to its own class and gets the computed tensors as plain parameters."""
    for module in model.modules():
        if parametrize.is_parametrized(module):
            tensors = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
            module.__class__ = type(module).__bases__[0]  # the class before parametrization
            del module.parametrizations
            for name, tensor in tensors.items():
                module.register_parameter(name, nn.Parameter(tensor))
    return model


def folded_weight(g: Tensor, v: Tensor) -> Tensor:
    """A weight-normed layer's stored magnitude `g` and direction `v` -> its weight g * v / ||v||, the norm over
    every axis where `g` has size 1 (so any `dim` of torch's weight_norm)."""
    dims = [i for i in range(v.ndim) if g.shape[i] == 1]
    return g * v / torch.linalg.vector_norm(v, dim=dims, keepdim=True)


def autocast_off(x: Tensor) -> torch.autocast:
    """Mixed precision off on x's device, for FFTs (cuFFT has no bfloat16), exp and polar: run them in float32."""
    return torch.autocast(x.device.type, enabled=False)


def lengths_to_mask(lengths: Tensor, size: int) -> Tensor:
    """lengths [B] -> mask [B, 1, size], 1.0 where a position is valid."""
    steps = torch.arange(size, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1).float()


def zero_past_(x: Tensor, lengths: Tensor) -> Tensor:
    """x [B, C, T] with each item's steps from lengths[b] on set to zero, in place: for fresh activations only.
    On the CPU it writes the padded tails alone (a masked multiply makes a new tensor from a pass over all of x:
    the codec's encode of padded batches took 2.4% longer with it, median of 3 pairs); elsewhere it multiplies by
    the mask in place, with no sync to the host."""
    if x.device.type == "cpu":
        for row, n in enumerate(lengths.tolist()):
            if n < x.shape[-1]:
                x[row, :, n:] = 0
        return x
    return _mask_past_(x, lengths)


def _mask_past_(x: Tensor, lengths: Tensor) -> Tensor:
    return x.mul_(lengths_to_mask(lengths, x.shape[-1]))


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
        return y if lengths is None else zero_past_(y, lengths)


def linear_overlap_add(pieces: list[Tensor], stride: int) -> Tensor:
    """Segments [..., L_k] placed every `stride` samples, each weighted by a triangle over the first segment's
    length (a shorter last segment takes the triangle's start), summed and divided by the summed weights: where
    two segments overlap, the output fades linearly from one to the other."""
    size = pieces[0].shape[-1]
    ramp = torch.arange(1, size + 1, device=pieces[0].device, dtype=pieces[0].dtype) / (size + 1)
    weight = 0.5 - (ramp - 0.5).abs()
    total = stride * (len(pieces) - 1) + pieces[-1].shape[-1]
    out = pieces[0].new_zeros(*pieces[0].shape[:-1], total)
    norm = pieces[0].new_zeros(total)
    for k, piece in enumerate(pieces):
        start, n = k * stride, piece.shape[-1]
        out[..., start : start + n] += weight[:n] * piece
        norm[start : start + n] += weight[:n]
    return out / norm
