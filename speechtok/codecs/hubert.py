"""A native HuBERT: conv feature extractor, convolutional positional embedding, transformer encoder.

`HubertModel` returns the hidden states of every layer (index 0 = the transformer's input after the positional
embedding, index i = the output of layer i: Hugging Face's `hidden_states` numbering, and fairseq's
`output_layer=i`). Its state-dict keys are Hugging Face's, so their checkpoints load as they are;
`hubert_loading.py` reads those directories and fairseq checkpoints. In pre-LN models (HuBERT Large) state L is
the last layer's raw output, as transformers 5's `hidden_states[-1]` and fairseq's `output_layer=L`; the final
`encoder.layer_norm` (their `last_hidden_state`) is loaded but not applied.

Frames: frame i reads samples [320 i, 320 i + 400), so T samples give floor((T - 400) / 320) + 1 frames
(`num_frames`), not T / 320.

Batches: `lengths` (valid samples per item) mask padding everywhere it could leak in: the group norm of the first
conv layer takes its statistics over valid frames only, padded frames are zeroed before the positional conv, and
attention ignores padded keys. An item of a padded batch so gets the features it gets alone (to float rounding).

Long inputs: attention is global (memory grows with T^2), so `HubertEncoder` runs files longer than
`window_seconds` in windows of that length, each with `context_seconds` of extra audio on both sides whose frames
are dropped. A frame then sees at least `context_seconds` of context each way rather than the whole file: features
of long files differ slightly from a single pass (which the model never saw in training either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .base import OWN_WINDOWS, Encoder


@dataclass(frozen=True)
class HubertConfig:
    """Architecture only (no dropout or masking options: training sets those on the task). Field names are
    Hugging Face's `HubertConfig` names; the defaults are a small model for CPU training, not HuBERT Base."""

    conv_dim: tuple[int, ...] = (128, 128, 128, 128, 128, 128, 128)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)  # product 320: 50 frames/s at 16 kHz
    conv_bias: bool = False
    feat_extract_norm: str = "layer"  # "group" (HuBERT Base: GroupNorm on layer 0) or "layer" (LayerNorm on all)
    feat_proj_layer_norm: bool = True
    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 768
    num_conv_pos_embeddings: int = 64  # kernel of the positional conv
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5
    do_stable_layer_norm: bool = False  # pre-LN layers (HuBERT Large); post-LN otherwise (Base)

    def __post_init__(self):
        for name in ("conv_dim", "conv_kernel", "conv_stride"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise ValueError(f"conv_dim, conv_kernel and conv_stride differ in length: {self.conv_dim}, "
                             f"{self.conv_kernel}, {self.conv_stride}")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of {self.num_attention_heads} heads")

    @property
    def hop_length(self) -> int:
        return math.prod(self.conv_stride)

    @property
    def window(self) -> int:
        """Input samples one frame reads (400 for HuBERT's extractor)."""
        field, scale = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride):
            field += (k - 1) * scale
            scale *= s
        return field


def conv_lengths(lengths: Tensor, kernels, strides) -> Tensor:
    """Valid samples [B] -> valid frames [B] after each unpadded conv: floor((L - k) / s) + 1, at least 0."""
    for k, s in zip(kernels, strides):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def masked_group_norm(x: Tensor, norm: nn.GroupNorm, mask: Tensor | None) -> Tensor:
    """GroupNorm of x [B, C, T] whose statistics come from the valid frames (mask [B, T]) only."""
    if mask is None:
        return norm(x)
    g = norm.num_groups
    m = mask[:, None, None, :].to(x.dtype)  # [B, 1, 1, T]
    xg = rearrange(x, "b (g c) t -> b g c t", g=g)
    count = (m.sum(-1, keepdim=True) * xg.shape[2]).clamp(min=1)  # valid frames x channels per group
    mean = (xg * m).sum((-1, -2), keepdim=True) / count
    var = (((xg - mean) * m) ** 2).sum((-1, -2), keepdim=True) / count
    y = rearrange((xg - mean) / torch.sqrt(var + norm.eps), "b g c t -> b (g c) t")
    return y * norm.weight[None, :, None] + norm.bias[None, :, None]


class ConvLayer(nn.Module):
    """conv -> (norm) -> GELU. Keys as Hugging Face's: `conv`, `layer_norm`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.layer_norm = nn.GroupNorm(c_out, c_out, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x [B, C, T] -> [B, C', T']; mask [B, T'] marks valid output frames (for the group norm)."""
        x = self.conv(x)
        if self.norm_kind == "group":
            x = masked_group_norm(x, self.layer_norm, mask)
        elif self.norm_kind == "layer":
            x = rearrange(self.layer_norm(rearrange(x, "b c t -> b t c")), "b t c -> b c t")
        return F.gelu(x)


class FeatureExtractor(nn.Module):
    def __init__(self, channels: tuple[int, ...], kernels: tuple[int, ...], strides: tuple[int, ...], bias: bool,
                 norm: str):
        """norm: "group" (on the first layer only, HuBERT base) or "layer" (on every layer, large)."""
        super().__init__()
        layers, c_in = [], 1
        for i, (c, k, s) in enumerate(zip(channels, kernels, strides)):
            layers.append(ConvLayer(c_in, c, k, s, bias, "layer" if norm == "layer" else ("group" if i == 0 else None)))
            c_in = c
        self.conv_layers = nn.ModuleList(layers)
        self.kernels, self.strides = kernels, strides

    def forward(self, wav: Tensor, lengths: Tensor | None) -> Tensor:
        """wav [B, T], lengths [B] samples -> [B, C, T_frames]"""
        x = wav[:, None]
        for i, (layer, k, s) in enumerate(zip(self.conv_layers, self.kernels, self.strides)):
            mask = None
            if lengths is not None and layer.norm_kind == "group":  # statistics over valid frames only
                valid = conv_lengths(lengths, self.kernels[: i + 1], self.strides[: i + 1])
                mask = torch.arange((x.shape[-1] - k) // s + 1, device=x.device) < valid[:, None]
            x = layer(x, mask)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c_in: int, dim: int, layer_norm: bool, eps: float):
        super().__init__()
        if layer_norm:
            self.layer_norm = nn.LayerNorm(c_in, eps=eps)
        self.projection = nn.Linear(c_in, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, C] -> [B, T, D]"""
        if hasattr(self, "layer_norm"):
            x = self.layer_norm(x)
        return self.projection(x)


class PositionalConv(nn.Module):
    """Grouped conv over time added to the input (wav2vec 2.0 / HuBERT's relative position signal)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        self.trim = 1 if kernel % 2 == 0 else 0  # an even kernel gives one frame too many

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, D] -> [B, T, D]"""
        y = self.conv(rearrange(x, "b t d -> b d t"))
        if self.trim:
            y = y[..., : -self.trim]
        return rearrange(F.gelu(y), "b d t -> b t d")


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        """x [B, T, D], key_mask [B, T] (True = valid) -> [B, T, D]"""
        q, k, v = (rearrange(proj(x), "b t (h d) -> b h t d", h=self.heads)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(rearrange(y, "b h t d -> b t (h d)"))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.intermediate_dense, self.output_dense = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float, pre_norm: bool):
        super().__init__()
        self.attention = Attention(dim, heads)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.feed_forward = FeedForward(dim, hidden)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        if self.pre_norm:
            x = x + self.attention(self.layer_norm(x), key_mask)
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x, key_mask))
        return self.final_layer_norm(x + self.feed_forward(x))


class TransformerEncoder(nn.Module):
    def __init__(self, dim: int, num_layers: int, heads: int, hidden: int, pos_kernel: int, pos_groups: int,
                 eps: float, pre_norm: bool):
        super().__init__()
        self.pos_conv_embed = PositionalConv(dim, pos_kernel, pos_groups)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, hidden, eps, pre_norm) for _ in range(num_layers))
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, mask: Tensor | None, last_layer: int) -> list[Tensor]:
        """x [B, T, D], mask [B, T] -> hidden states 0..last_layer, each [B, T, D]."""
        if mask is not None:  # padded frames must not reach valid ones through the positional conv
            x = x * mask[..., None]
        x = x + self.pos_conv_embed(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        states = [x]
        for layer in self.layers[:last_layer]:
            states.append(layer(states[-1], mask))
        return states


class HubertModel(nn.Module):
    """wav [B, T] -> hidden states of layers 0..L, each [B, T_frames, D]. Keys as Hugging Face's HubertModel."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = FeatureExtractor(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride, cfg.conv_bias,
                                                  cfg.feat_extract_norm)
        self.feature_projection = FeatureProjection(cfg.conv_dim[-1], cfg.hidden_size, cfg.feat_proj_layer_norm,
                                                    cfg.layer_norm_eps)
        self.masked_spec_embed = nn.Parameter(torch.zeros(cfg.hidden_size).uniform_())  # replaces masked frames
        self.encoder = TransformerEncoder(cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                                          cfg.intermediate_size, cfg.num_conv_pos_embeddings,
                                          cfg.num_conv_pos_embedding_groups, cfg.layer_norm_eps,
                                          cfg.do_stable_layer_norm)

    @property
    def num_layers(self) -> int:
        return self.cfg.num_hidden_layers

    def num_frames(self, num_samples: Tensor) -> Tensor:
        """[B] samples -> [B] frames: floor((T - 400) / 320) + 1 for HuBERT's extractor."""
        return conv_lengths(num_samples, self.cfg.conv_kernel, self.cfg.conv_stride)

    def features(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The conv extractor + projection: wav [B, T] -> ([B, T_frames, D], frame mask [B, T_frames] or None)."""
        conv = rearrange(self.feature_extractor(wav, lengths), "b c t -> b t c")
        mask = None
        if lengths is not None:
            mask = torch.arange(conv.shape[1], device=wav.device) < self.num_frames(lengths)[:, None]
        return self.feature_projection(conv), mask

    def forward(self, wav: Tensor, lengths: Tensor | None = None, last_layer: int | None = None,
                time_mask: Tensor | None = None) -> list[Tensor]:
        """wav [B, T], lengths [B] valid samples -> hidden states 0..last_layer (default all), each [B, T', D].
        `time_mask` [B, T'] (True = masked) replaces those frames by the learned mask embedding (pre-training)."""
        last_layer = self.num_layers if last_layer is None else last_layer
        if not 0 <= last_layer <= self.num_layers:
            raise ValueError(f"layer {last_layer} is out of range 0..{self.num_layers}")
        x, mask = self.features(wav, lengths)
        if time_mask is not None:
            x = torch.where(time_mask[..., None], self.masked_spec_embed.to(x.dtype), x)
        return self.encoder(x, mask, last_layer)


class HubertEncoder(Encoder):
    """The `Encoder` of the HuBERT-units tokenizer: the features of one layer, in windows for long inputs.

    Unlike the conv codecs' encoders it gives floor((T - 400) / 320) + 1 frames for T samples, frame i centred on
    sample 320 i + 200 (`frame_offset` = 40 samples relative to a frame grid starting at 0). It windows long inputs
    itself and needs no whole-frame padding (a padded batch is masked and passed its exact lengths).
    """

    window_seconds: float = 20.0  # longest input attended at once
    context_seconds: float = 2.0  # extra audio each side of a window; its frames are dropped
    frame_name = "HuBERT frame"
    windows = OWN_WINDOWS
    pad_to_frames = False

    def __init__(self, cfg: HubertConfig, layer: int, sample_rate: int = 16000):
        super().__init__()
        if not 0 <= layer <= cfg.num_hidden_layers:
            raise ValueError(f"layer {layer} is out of range 0..{cfg.num_hidden_layers}")
        self.model = HubertModel(cfg)
        self.layer = layer
        self.hop_length = cfg.hop_length
        self.dim = cfg.hidden_size
        self.sample_rate = sample_rate
        self.frame_offset = (cfg.window - cfg.hop_length) // 2  # 40 for HuBERT: centre 200 vs a hop-grid's 160

    @property
    def receptive_field(self) -> int:
        return int(self.window_seconds * self.sample_rate)

    @property
    def min_samples(self) -> int:
        return self.model.cfg.window

    def num_frames(self, num_samples: Tensor) -> Tensor:
        return self.model.num_frames(torch.as_tensor(num_samples))

    def forward(self, wav: Tensor, lengths: Tensor | None = None, layer: int | None = None) -> Tensor:
        """wav [B, 1, T], lengths [B] valid samples -> features of `layer` (default the configured one)
        [B, D, floor((T - 400) / 320) + 1], windowed when T is longer than `window_seconds`."""
        layer = self.layer if layer is None else layer
        x = rearrange(wav, "b 1 t -> b t")
        total = int(self.num_frames(torch.tensor(x.shape[-1])))
        step = max(1, int(self.window_seconds * self.sample_rate) // self.hop_length)
        if total <= step:
            return rearrange(self.model(x, lengths, last_layer=layer)[layer], "b t d -> b d t")
        context = math.ceil(self.context_seconds * self.sample_rate / self.hop_length)
        extra = self.model.cfg.window - self.hop_length  # samples past a frame's hop that it still reads
        out = []
        for a in range(0, total, step):  # keep frames [a, b) of a window over frames [s, e)
            b = min(a + step, total)
            s, e = max(0, a - context), min(total, b + context)
            lens = None if lengths is None else (lengths - s * self.hop_length).clamp(min=0)
            chunk = x[:, s * self.hop_length : e * self.hop_length + extra]
            if lens is not None:  # an item that ends before this window still needs one frame to run on
                lens = lens.clamp(min=self.model.cfg.window, max=chunk.shape[-1])
            h = self.model(chunk, lens, last_layer=layer)[layer]
            out.append(h[:, a - s : b - s])
        return rearrange(torch.cat(out, dim=1), "b t d -> b d t")
