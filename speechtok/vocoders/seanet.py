"""The SEANet decoder of EnCodec and SpeechTokenizer: a conv, an LSTM, then transposed-conv upsampling blocks with
residual units, in the official module layout (so released checkpoints load 1:1; see speechtok/layers/seanet.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from ..layers.seanet import SLSTM, SConv1d, SConvTranspose1d, SEANetResnetBlock
from .base import Decoder


@dataclass(frozen=True)
class SEANetDecoderConfig:
    dimension: int = 1024  # input latent size D
    n_filters: int = 64  # channels of the last block; doubled per block towards the input
    strides: tuple[int, ...] = (8, 5, 4, 2)
    lstm_layers: int = 2
    n_residual_layers: int = 1
    residual_kernel_size: int = 3
    dilation_base: int = 2
    lstm_context_frames: int = 250  # chunked decoding overlaps by this: the LSTM's window (5 s at 50 Hz)

    def __post_init__(self):
        object.__setattr__(self, "strides", tuple(self.strides))


class SEANetDecoder(Decoder):
    def __init__(self, cfg: SEANetDecoderConfig, norm: bool = False):
        super().__init__()
        self.cfg, self.hop_length = cfg, math.prod(cfg.strides)
        ch = cfg.n_filters * 2 ** len(cfg.strides)
        layers: list[nn.Module] = [SConv1d(cfg.dimension, ch, 7, norm=norm)]
        if cfg.lstm_layers:
            layers.append(SLSTM(ch, cfg.lstm_layers))
        for stride in cfg.strides:
            layers += [nn.ELU(), SConvTranspose1d(ch, ch // 2, 2 * stride, stride, norm=norm)]
            layers += [SEANetResnetBlock(ch // 2, cfg.residual_kernel_size, cfg.dilation_base**j, norm=norm)
                       for j in range(cfg.n_residual_layers)]
            ch //= 2
        layers += [nn.ELU(), SConv1d(ch, 1, 7, norm=norm)]
        self.model = nn.Sequential(*layers)

    def forward(self, z_q: Tensor) -> Tensor:
        """z_q [B, D, T] -> wav [B, 1, T * hop_length]"""
        return self.model(z_q)

    @property
    def receptive_field_frames(self) -> int:
        convs = 3 + sum(2 * self.cfg.n_residual_layers for _ in self.cfg.strides)  # generous: a few frames
        return (self.cfg.lstm_context_frames if self.cfg.lstm_layers else 0) + convs
