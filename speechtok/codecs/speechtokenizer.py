"""The SpeechTokenizer encoder (Zhang et al., 2023): an EnCodec-style SEANet with a BiLSTM, whose RVQ layer 1 is
distilled towards a HuBERT teacher, so that the first codebook carries content and the rest acoustic detail.

The layout is the official release's (`config.json` keys, module names), so its checkpoints load 1:1 (see
`speechtok.adapters.speechtokenizer_release.load_speechtokenizer_release`). Batches: reflect padding and the BiLSTM
make an item's frames depend on where its signal ends, so items of unequal length are encoded one by one (exact
batch invariance). Long files: the BiLSTM sees the whole input, so chunked encoding is windowed; `lstm_context_s` of
context on each side of a window keeps the codes those of one pass on nearly every frame (DESIGN.md's 99% bound for
recurrent encoders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.seanet import SLSTM, SConv1d, SEANetResnetBlock
from .base import OWN_LENGTHS, Encoder


@dataclass(frozen=True)
class SpeechTokenizerConfig:
    """The official `config.json` fields (training-only keys in that file are ignored when loading)."""

    sample_rate: int = 16000
    n_filters: int = 64
    strides: tuple[int, ...] = (8, 5, 4, 2)  # decoder order, as in the release; the encoder runs them reversed
    dimension: int = 1024
    semantic_dimension: int = 768  # the teacher's feature size; RVQ layer 1 is projected to it
    n_q: int = 8
    codebook_size: int = 1024
    lstm_layers: int = 2
    bidirectional: bool = True  # the encoder's LSTM; the decoder's is unidirectional
    dilation_base: int = 2
    residual_kernel_size: int = 3
    n_residual_layers: int = 1
    activation: str = "ELU"
    lstm_context_s: float = 5.0  # windowed long-file encoding: context on each side of a window

    def __post_init__(self):
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.activation != "ELU":
            raise ValueError(f"activation {self.activation!r} is not supported (the release uses ELU)")

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)


class SpeechTokenizerEncoder(Encoder):
    # as the release encodes: each item read at its own length (its edges padded with reflections of the signal,
    # not zeros), so codes equal the official package's for any length
    batching = OWN_LENGTHS
    pad_to_frames = False

    def __init__(self, cfg: SpeechTokenizerConfig, norm: bool = False):
        super().__init__()
        self.cfg, self.dim, self.hop_length = cfg, cfg.dimension, cfg.hop_length
        ch = cfg.n_filters
        layers: list[nn.Module] = [SConv1d(1, ch, 7, norm=norm)]
        for stride in reversed(cfg.strides):
            layers += [SEANetResnetBlock(ch, cfg.residual_kernel_size, cfg.dilation_base**j, norm=norm)
                       for j in range(cfg.n_residual_layers)]
            layers += [nn.ELU(), SConv1d(ch, 2 * ch, 2 * stride, stride=stride, norm=norm)]
            ch *= 2
        if cfg.lstm_layers:
            layers.append(SLSTM(ch, cfg.lstm_layers, cfg.bidirectional))
        out_ch = 2 * ch if cfg.lstm_layers and cfg.bidirectional else ch
        layers += [nn.ELU(), SConv1d(out_ch, cfg.dimension, 7, norm=norm)]
        self.model = nn.Sequential(*layers)

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """wav [B, 1, T], lengths [B] valid samples -> z [B, D, ceil(T / hop_length)]."""
        if lengths is None or bool((lengths == wav.shape[-1]).all()):
            return self.model(wav)
        frames = -(-wav.shape[-1] // self.hop_length)
        out = wav.new_zeros(wav.shape[0], self.dim, frames)
        for i, n in enumerate(lengths.tolist()):
            z = self.model(wav[i : i + 1, :, :n])
            out[i, :, : z.shape[-1]] = z[0]
        return out

    @property
    def receptive_field(self) -> int:
        """The conv stack's field plus the LSTM context: chunked encoding overlaps by this (a window: the LSTM's
        true field is the whole input)."""
        lstm = round(2 * self.cfg.lstm_context_s * self.cfg.sample_rate) if self.cfg.lstm_layers else 0
        return self._conv_field() + lstm

    def _conv_field(self) -> int:
        field, scale = 1, 1
        for conv in (m for m in self.model.modules() if isinstance(m, SConv1d)):
            field += (conv.span - 1) * scale
            scale *= conv.stride
        return field


class SemanticProjection(nn.Module):
    """RVQ layer 1's quantized output -> the teacher's feature size (identity when they agree), as `transform`."""

    def __init__(self, dim: int, teacher_dim: int):
        super().__init__()
        self.transform = nn.Identity() if dim == teacher_dim else nn.Linear(dim, teacher_dim)

    def forward(self, first_layer: Tensor) -> Tensor:
        """[B, D, T] -> [B, T, semantic_dimension]"""
        return self.transform(first_layer.transpose(1, 2))


def teacher_losses(student: Tensor, teacher: Tensor, t_axis: bool = False) -> dict[str, Tensor]:
    """SpeechTokenizer's distillation losses between student [B, T, D] and teacher [B, T, D] features (the frames
    both have).

    D-axis (the paper's choice): -log sigmoid of the cosine between student and teacher along time, for each
    feature dimension: it asks each dimension to follow the teacher's trajectory. T-axis (optional): L1 plus
    -log sigmoid of the cosine between each frame's feature vectors.
    """
    frames = min(student.shape[1], teacher.shape[1])
    s, t = student[:, :frames], teacher[:, :frames].detach()
    losses = {"distill/d_axis": -F.logsigmoid(F.cosine_similarity(s, t, dim=1)).mean()}
    if t_axis:
        losses["distill/t_axis"] = F.l1_loss(s, t) - F.logsigmoid(F.cosine_similarity(s, t, dim=-1)).mean()
    return losses
