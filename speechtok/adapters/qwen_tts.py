"""The Qwen3-TTS 12 Hz tokenizer as a speechtok tokenizer: `speechtok.load("qwen-tts:DIR[?q=N]")`, or the zoo's
`qwen-tts-12hz`.

16 codebooks of 2048 at 12.5 Hz from 24 kHz audio (2.2 kbps). The encoder is Mimi's (SEANet, transformer,
downsampling, a split RVQ whose first codebook is the semantic one; the first 16 of its 32 codebooks are kept). The
decoder is the tokenizer's own: each codebook's embedding (a split RVQ: the first codebook and the rest projected
apart), a causal convolution, a causal transformer with a 72-frame sliding window, ConvNeXt upsampling and a
SnakeBeta convolution stack, run in 300-frame chunks with 25 frames of left context, as the package decodes.

DIR is the publisher's layout (Qwen/Qwen3-TTS-Tokenizer-12Hz: `config.json` with model_type
"qwen3_tts_tokenizer_12hz" and `model.safetensors`). The `qwen-tts` package pins transformers 4.57 and does not
import on transformers 5, so the model is assembled here from transformers 5's parts: `MimiModel`'s encoder half
and quantizer, and Qwen3-Omni's Code2Wav blocks (the same transformer layers, convolutions and SnakeBeta), with
the checkpoint's names mapped onto them (`_RENAMES`).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    arch_json,
    hf_files,
    load_weights,
    parse_spec,
    peer_tokenizer,
    read_json,
    read_state,
    require,
    select_q,
)

MODEL_TYPE = "qwen3_tts_tokenizer_12hz"
CHUNK, LEFT_CONTEXT = 300, 25  # the package's `chunked_decode`, in frames
# the checkpoint's names (transformers 4.57's Mimi inside the package's model) -> this module's
_RENAMES = (
    (r"^encoder\.encoder\.layers\.", "encoder.encoder_seanet.layers."),
    (r"^encoder\.quantizer\.", "quantizer."),
    (r"^decoder\.pre_transformer\.(layers|norm)\.", r"decoder.pre_transformer.body.\1."),
)


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "qwen-tts")
    config = read_json(path / "config.json") if path.is_dir() else {}
    if config.get("model_type") != MODEL_TYPE:
        raise CheckpointError(f"{path}: not a Qwen3-TTS 12 Hz tokenizer directory (config.json with model_type "
                              f"'{MODEL_TYPE}')")
    files = hf_files(path)
    transformers = require("transformers", "qwen-tts", spec)
    model = Qwen3TTSTokenizer12Hz(config, transformers)
    state = {}
    for file in files[1:]:
        state.update(read_state(file))
    load_weights(model, {_renamed(k): v for k, v in state.items()}, files[1])
    return tokenizer(model, config, options, spec, checkpoint_identity(files), device)


def tokenizer(model: Qwen3TTSTokenizer12Hz, config: dict, options: dict[str, str], spec: str | None,
              checkpoint: dict, device=None) -> Tokenizer:
    """The model (weights loaded) behind the speechtok API; `options` as parsed from the spec (`q`)."""
    rate, kept = int(config.get("input_sample_rate", 24000)), int(config["encoder_valid_num_quantizers"])
    hop = int(config.get("encode_downsample_rate", 1920))
    q = select_q(options, spec or "qwen-tts", kept)
    cfg = PeerConfig("qwen-tts", "qwen-tts-12hz", rate, hop, q, model.decoder.codebook_size, arch_json(config))
    parts = PeerParts(
        encode=lambda m, wav: m.encoder(wav).latents,  # Mimi's encoder half: [B, D, T]
        quantize=lambda m, z, n_q: m.quantizer.encode(z, n_q).transpose(0, 1),  # [K, B, T] -> [B, K, T]
        dequantize=lambda m, codes: m.decoder.dequantize(codes),
        decode=lambda m, z: m.decoder.chunked(z))
    notes = (f"{kept} of the Mimi encoder's {model.quantizer.max_num_quantizers} codebooks; the decoder's own split "
             f"RVQ embeddings, sliding-window transformer and SnakeBeta convolutions, decoded in {CHUNK}-frame "
             f"chunks with {LEFT_CONTEXT} frames of left context" +
             ("" if q == kept else f"; q={q}: the package decodes all {kept}, here the first {q} are summed"))
    return peer_tokenizer(model, parts, cfg, dim=model.encoder.config.hidden_size, checkpoint=checkpoint,
                          package="transformers", device=device, notes=notes)


def _renamed(key: str) -> str:
    for pattern, target in _RENAMES:
        key = re.sub(pattern, target, key)
    return key


class Qwen3TTSTokenizer12Hz(nn.Module):
    """Mimi's encoder half and quantizer, and the tokenizer's decoder (`config`: the publisher's config.json)."""

    def __init__(self, config: dict, transformers) -> None:
        super().__init__()
        mimi = transformers.models.mimi.modeling_mimi
        mc = transformers.MimiConfig(**config["encoder_config"])
        self.encoder = mimi.MimiEncoderModel(mc.encoder_config)  # MimiModel's encoder half; its decoder is not used
        self.quantizer = mimi.MimiSplitResidualVectorQuantizer(mc)
        self.decoder = Decoder12Hz(config["decoder_config"], transformers)


class Decoder12Hz(nn.Module):
    def __init__(self, cfg: dict, transformers) -> None:
        super().__init__()
        omni = transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe
        code2wav = _code2wav_config(cfg, transformers)
        dim, latent, self.codebook_size = cfg["codebook_dim"], cfg["latent_dim"], cfg["codebook_size"]
        self.quantizer = SplitCodebooks(cfg["num_quantizers"], cfg["codebook_size"], dim)
        self.pre_conv = omni.Qwen3OmniMoeCausalConvNet(dim, latent, kernel_size=3)
        self.pre_transformer = ProjectedTransformer(omni.Qwen3OmniMoeCode2WavTransformerModel(code2wav), latent,
                                                    code2wav.hidden_size)
        self.upsample = nn.ModuleList(nn.ModuleList([CausalTransposedConv(latent, latent, f, f),
                                                     omni.Qwen3OmniMoeConvNeXtBlock(latent)])
                                      for f in cfg["upsampling_ratios"])
        rates, width = cfg["upsample_rates"], cfg["decoder_dim"]
        blocks = [UpsampleBlock(omni, width // 2**i, width // 2 ** (i + 1), rate) for i, rate in enumerate(rates)]
        out = width // 2 ** len(rates)
        self.decoder = nn.ModuleList([omni.Qwen3OmniMoeCausalConvNet(latent, width, 7), *blocks,
                                      omni.Qwen3OmniMoeSnakeBeta(out), omni.Qwen3OmniMoeCausalConvNet(out, 1, 7)])
        self.hop_length = math.prod([*rates, *cfg["upsampling_ratios"]])

    def dequantize(self, codes: Tensor) -> Tensor:
        return self.quantizer.decode(codes)

    def forward(self, z: Tensor) -> Tensor:
        """The dequantized codes [B, codebook_dim, T] -> audio [B, 1, T * hop] in [-1, 1]."""
        hidden = self.pre_transformer(self.pre_conv(z).transpose(1, 2)).transpose(1, 2)
        for blocks in self.upsample:
            for block in blocks:
                hidden = block(hidden)
        for block in self.decoder:
            hidden = block(hidden)
        return hidden.clamp(min=-1, max=1)

    def chunked(self, z: Tensor) -> Tensor:
        """The package's `chunked_decode`: CHUNK frames at a time, each after up to LEFT_CONTEXT frames of the
        previous ones, whose audio is dropped. (The embedding is per frame, so chunking it first is the same.)"""
        pieces, start = [], 0
        while start < z.shape[-1]:
            end = min(start + CHUNK, z.shape[-1])
            context = LEFT_CONTEXT if start - LEFT_CONTEXT > 0 else start
            pieces.append(self(z[..., start - context:end])[..., context * self.hop_length:])
            start = end
        return torch.cat(pieces, dim=-1)


def _code2wav_config(cfg: dict, transformers):
    """Qwen3-Omni's Code2Wav config holding the decoder's fields (its RoPE theta as transformers 5 spells it)."""
    fields = ("codebook_size", "hidden_size", "max_position_embeddings", "num_attention_heads", "num_key_value_heads",
              "attention_bias", "sliding_window", "intermediate_size", "hidden_act", "layer_scale_initial_scale",
              "rms_norm_eps", "num_hidden_layers", "num_quantizers", "upsample_rates", "upsampling_ratios",
              "decoder_dim", "attention_dropout")
    rope = {"rope_type": "default", "rope_theta": float(cfg.get("rope_theta", 10000.0))}
    omni = transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe
    return omni.Qwen3OmniMoeCode2WavConfig(**{k: cfg[k] for k in fields if k in cfg}, rope_parameters=rope)


class CausalTransposedConv(nn.Module):
    """A transposed convolution trimmed on the right only (Qwen3-Omni's trims both sides: a different length)."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(channels_in, channels_out, kernel_size, stride=stride)
        self.trim = kernel_size - stride

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y[..., :y.shape[-1] - self.trim].contiguous()


class UpsampleBlock(nn.Module):
    """SnakeBeta, a x`rate` transposed convolution and three dilated residual units (Qwen3-Omni's)."""

    def __init__(self, omni, channels_in: int, channels_out: int, rate: int) -> None:
        super().__init__()
        self.block = nn.ModuleList([omni.Qwen3OmniMoeSnakeBeta(channels_in),
                                    CausalTransposedConv(channels_in, channels_out, 2 * rate, rate),
                                    *(omni.Qwen3OmniMoeCode2WavDecoderResidualUnit(channels_out, dilation)
                                      for dilation in (1, 3, 9))])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.block:
            x = layer(x)
        return x


class ProjectedTransformer(nn.Module):
    """Qwen3-Omni's Code2Wav transformer between the tokenizer's projections from and to the latent width."""

    def __init__(self, body: nn.Module, latent: int, hidden: int) -> None:
        super().__init__()
        self.body = body
        self.input_proj, self.output_proj = nn.Linear(latent, hidden), nn.Linear(hidden, latent)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_proj(self.body(inputs_embeds=self.input_proj(x)).last_hidden_state)


class SplitCodebooks(nn.Module):
    """The decoder's code embeddings: the first codebook and the rest, each group summed and projected apart."""

    def __init__(self, num_codebooks: int, size: int, dim: int) -> None:
        super().__init__()
        self.rvq_first, self.rvq_rest = CodebookGroup(1, size, dim), CodebookGroup(num_codebooks - 1, size, dim)

    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, q, T], q >= 1 -> [B, dim, T]"""
        z = self.rvq_first.decode(codes[:, :1])
        return z + self.rvq_rest.decode(codes[:, 1:]) if codes.shape[1] > 1 else z


class CodebookGroup(nn.Module):
    """EMA codebooks stored as sums and counts (the checkpoint's `embedding_sum` / `cluster_usage`), summed over
    the group's codebooks and projected by a 1x1 convolution. `input_proj` is the encoder side's, kept to load."""

    def __init__(self, n: int, size: int, dim: int) -> None:
        super().__init__()
        self.input_proj = nn.Conv1d(dim, dim // 2, 1, bias=False)
        self.output_proj = nn.Conv1d(dim // 2, dim, 1, bias=False)
        self.vq = nn.Module()
        self.vq.layers = nn.ModuleList(_Codebook(size, dim // 2) for _ in range(n))

    def decode(self, codes: Tensor) -> Tensor:
        z = sum(layer._codebook.decode(codes[:, i]) for i, layer in enumerate(self.vq.layers[:codes.shape[1]]))
        return self.output_proj(z)


class _Codebook(nn.Module):
    """One codebook as the checkpoint nests it (`vq.layers.N._codebook.*`)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self._codebook = EmaCodebook(size, dim)


class EmaCodebook(nn.Module):
    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.cluster_usage = nn.Parameter(torch.ones(size))
        self.embedding_sum = nn.Parameter(torch.zeros(size, dim))

    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, T] -> [B, dim, T]"""
        return F.embedding(codes, self.embedding_sum / self.cluster_usage.clamp(min=1e-5)[:, None]).transpose(1, 2)
