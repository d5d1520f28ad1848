"""SEANet layers in the EnCodec layout (EnCodec, SpeechTokenizer): convolutions with reflect padding that keep
`ceil(T / stride)` frames, transposed convolutions trimmed back to `T * stride`, residual blocks with a 1x1
shortcut, and an LSTM with a skip connection.

Module names follow the official checkpoints (`model.N.conv.conv`, `model.N.block.M.conv.conv`,
`model.N.shortcut.conv.conv`, `model.N.convtr.convtr`, `model.N.lstm`), so their state dicts load 1:1 once
their weight norm (`weight_g` / `weight_v`) is folded (`fold_weight_norm_keys`).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from . import folded_weight, maybe_weight_norm


class _Conv(nn.Module):  # the official NormConv1d wrapper: one level of nesting, `conv`
    def __init__(self, conv: nn.Module, norm: bool):
        super().__init__()
        self.conv = maybe_weight_norm(conv, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _ConvTr(nn.Module):  # the official NormConvTranspose1d wrapper: `convtr`
    def __init__(self, conv: nn.Module, norm: bool):
        super().__init__()
        self.convtr = maybe_weight_norm(conv, norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.convtr(x)


def pad1d(x: Tensor, left: int, right: int, mode: str) -> Tensor:
    """F.pad, also for reflect padding wider than the input (zeros are appended first, as EnCodec does)."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode)
    extra = max(0, max(left, right) - x.shape[-1] + 1)
    padded = F.pad(F.pad(x, (0, extra)), (left, right), "reflect")
    return padded[..., : padded.shape[-1] - extra]


class SConv1d(nn.Module):
    """Conv1d that pads its input so that the output has ceil(T / stride) frames and every input sample is seen."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 causal: bool = False, pad_mode: str = "reflect", norm: bool = False):
        super().__init__()
        self.conv = _Conv(nn.Conv1d(in_ch, out_ch, kernel_size, stride, dilation=dilation), norm)
        self.causal, self.pad_mode = causal, pad_mode
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    @property
    def span(self) -> int:
        return (self.kernel_size - 1) * self.dilation + 1

    def forward(self, x: Tensor) -> Tensor:
        total = (self.kernel_size - 1) * self.dilation - (self.stride - 1)
        frames = (x.shape[-1] - self.kernel_size + total) / self.stride + 1
        extra = (math.ceil(frames) - 1) * self.stride + (self.kernel_size - total) - x.shape[-1]
        if self.causal:
            return self.conv(pad1d(x, total, extra, self.pad_mode))
        right = total // 2
        return self.conv(pad1d(x, total - right, right + extra, self.pad_mode))


class SConvTranspose1d(nn.Module):
    """ConvTranspose1d trimmed to exactly T * stride samples (all the trim on the right when causal)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, causal: bool = False,
                 norm: bool = False):
        super().__init__()
        self.convtr = _ConvTr(nn.ConvTranspose1d(in_ch, out_ch, kernel_size, stride), norm)
        self.causal, self.kernel_size, self.stride = causal, kernel_size, stride

    def forward(self, x: Tensor) -> Tensor:
        y = self.convtr(x)
        total = self.kernel_size - self.stride
        right = total if self.causal else total // 2
        return y[..., total - right : y.shape[-1] - right]


class SEANetResnetBlock(nn.Module):
    """ELU, dilated conv to dim / compress, ELU, 1x1 conv back; added to a 1x1-conv shortcut (or the identity)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int = 2, true_skip: bool = False,
                 causal: bool = False, pad_mode: str = "reflect", norm: bool = False):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            nn.ELU(), SConv1d(dim, hidden, kernel_size, dilation=dilation, causal=causal, pad_mode=pad_mode, norm=norm),
            nn.ELU(), SConv1d(hidden, dim, 1, causal=causal, pad_mode=pad_mode, norm=norm),
        )
        self.shortcut = nn.Identity() if true_skip else SConv1d(dim, dim, 1, causal=causal, pad_mode=pad_mode,
                                                                norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    """LSTM over [B, C, T] with a skip connection; bidirectional doubles the channels (the input is repeated)."""

    def __init__(self, dim: int, num_layers: int, bidirectional: bool = False):
        super().__init__()
        self.bidirectional = bidirectional
        self.lstm = nn.LSTM(dim, dim, num_layers, bidirectional=bidirectional)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.permute(2, 0, 1)  # [T, B, C]
        y, _ = self.lstm(seq)
        skip = seq.repeat(1, 1, 2) if self.bidirectional else seq
        return (y + skip).permute(1, 2, 0)


# (magnitude, direction) key suffixes: torch.nn.utils.weight_norm's, and the parametrizations version's
WEIGHT_NORM_SUFFIXES = ((".weight_g", ".weight_v"),
                        (".parametrizations.weight.original0", ".parametrizations.weight.original1"))


def fold_weight_norm_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`x.weight_g` + `x.weight_v` (or `x.parametrizations.weight.original0` / `original1`) -> `x.weight`; other
    keys unchanged."""
    out = {}
    for key, value in state.items():
        for g, v in WEIGHT_NORM_SUFFIXES:
            if key.endswith(g):
                base = key[: -len(g)]
                out[base + ".weight"] = folded_weight(value, state[base + v])
                break
            if key.endswith(v):
                break
        else:
            out[key] = value
    return out
