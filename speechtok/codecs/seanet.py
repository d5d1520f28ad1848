"""SoundStream / EnCodec-style SEANet encoder: strided conv blocks with dilated residual units.

An LSTM is an option (off by default): it makes a frame depend on the whole file, which breaks the
exact chunk invariance that the pure conv stack has (DESIGN.md, "Invariance").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..layers import PaddedConv1d, lengths_to_mask
from .base import Encoder


@dataclass(frozen=True)
class SEANetConfig:
    channels: int = 16  # width of the first block; doubles at every stride
    dim: int = 128  # latent dimension D
    strides: tuple[int, ...] = (2, 4, 5, 8)  # hop = product: 320 samples = 50 frames/s at 16 kHz
    kernel_size: int = 7
    residual_kernel_size: int = 3
    num_residual_layers: int = 1  # per block, dilations dilation_base ** j
    dilation_base: int = 2
    compress: int = 2  # residual units narrow to channels / compress
    causal: bool = False
    lstm_layers: int = 0  # 0 keeps chunk invariance exact

    def __post_init__(self):
        object.__setattr__(self, "strides", tuple(self.strides))


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, compress: int, causal: bool, norm: bool):
        super().__init__()
        hidden = channels // compress
        self.conv1 = PaddedConv1d(channels, hidden, kernel_size, dilation=dilation, causal=causal, norm=norm)
        self.conv2 = PaddedConv1d(hidden, channels, 1, norm=norm)
        self.act = nn.ELU()

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x), lengths)), lengths)


class EncoderBlock(nn.Module):
    """Residual units at the input rate, then a strided conv that doubles the channels."""

    def __init__(self, channels: int, stride: int, num_residual_layers: int, residual_kernel_size: int,
                 dilation_base: int, compress: int, causal: bool, norm: bool):
        super().__init__()
        self.units = nn.ModuleList(
            ResidualUnit(channels, residual_kernel_size, dilation_base**j, compress, causal, norm)
            for j in range(num_residual_layers)
        )
        self.act = nn.ELU()
        self.down = PaddedConv1d(channels, 2 * channels, 2 * stride, stride=stride, causal=causal, norm=norm)
        self.stride = stride

    def forward(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        for unit in self.units:
            x = unit(x, lengths)
        lengths = None if lengths is None else lengths // self.stride
        return self.down(self.act(x), lengths), lengths


class SEANetEncoder(Encoder):
    def __init__(self, cfg: SEANetConfig, norm: bool = False):
        super().__init__()
        self.cfg = cfg
        self.hop_length = math.prod(cfg.strides)
        self.dim = cfg.dim
        ch = cfg.channels
        self.stem = PaddedConv1d(1, ch, cfg.kernel_size, causal=cfg.causal, norm=norm)
        blocks = []
        for stride in cfg.strides:
            blocks.append(EncoderBlock(ch, stride, cfg.num_residual_layers, cfg.residual_kernel_size,
                                       cfg.dilation_base, cfg.compress, cfg.causal, norm))
            ch *= 2
        self.blocks = nn.ModuleList(blocks)
        self.lstm = nn.LSTM(ch, ch, cfg.lstm_layers, batch_first=True) if cfg.lstm_layers else None
        self.act = nn.ELU()
        self.head = PaddedConv1d(ch, cfg.dim, cfg.kernel_size, causal=cfg.causal, norm=norm)

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """wav [B, 1, T] (T a multiple of hop_length), lengths [B] samples -> z [B, D, T / hop_length]."""
        if lengths is not None:  # samples past an item's end must read as silence, as they do alone
            wav = wav * lengths_to_mask(lengths, wav.shape[-1])
        x = self.stem(wav, lengths)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        if self.lstm is not None:
            x = x + self._lstm(x, lengths)
        return self.head(self.act(x), lengths)

    def _lstm(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        seq = x.transpose(1, 2)  # (B, C, T) -> (B, T, C)
        if lengths is None:
            return self.lstm(seq)[0].transpose(1, 2)
        packed = pack_padded_sequence(seq, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=seq.shape[1])
        return out.transpose(1, 2)

    @property
    def finite_context(self) -> bool:
        return self.lstm is None

    @property
    def lookahead(self) -> int:
        """Causal convolutions (and a forward LSTM) read no sample past a frame's own hop."""
        return 0 if self.cfg.causal else self.receptive_field

    @property
    def receptive_field(self) -> int:
        """Walk the conv stack from the output back to the input: each layer widens the field by its extent."""
        convs = [self.stem]
        for block in self.blocks:
            convs += [c for unit in block.units for c in (unit.conv1, unit.conv2)] + [block.down]
        convs.append(self.head)
        field, scale = 1, 1
        for conv in convs:  # input-to-output order; `scale` = input samples per step at this layer
            field += (conv.span - 1) * scale
            scale *= conv.stride
        return field
