"""DualCodec (Amphion) as a speechtok tokenizer: `speechtok.load("dualcodec:DIR?w2v=W2V_DIR[&model=12hz_v1][&q=N]")`,
or the zoo's `dualcodec-12hz` / `dualcodec-25hz`.

Two streams in one set of codes: codebook 0 is semantic (16384 codes, quantising w2v-BERT 2.0's 17th hidden state,
normalised and pooled to the frame rate, through ConvNeXt blocks), codebooks 1.. are acoustic (a DAC encoder's
latent minus the decoded semantic latent, by a DAC residual VQ of 4096 (12.5 Hz) or 1024 (25 Hz) codes); the DAC
decoder turns their sum into 24 kHz audio. The codebooks differ in size (`Tokenizer.codebook_sizes`).

DIR is the publisher's folder (amphion/dualcodec: `dualcodec_12hz_16384_4096.safetensors`,
`dualcodec_25hz_16384_1024.safetensors` and `w2vbert2_mean_var_stats_emilia.pt`, read with `weights_only=True`);
`model` picks the file when both are there. W2V_DIR is facebook/w2v-bert-2.0 in the `transformers` layout (its first
17 layers are run). Widths, rates and codebook sizes come from the weights; the ConvNeXt blocks are causal in both
releases (`causal=0` otherwise).

The front end is the package's `Inference.encode`: the 24 kHz input resampled to 16 kHz by torchaudio's sinc filter
(`audio.sinc_resample`, no torchaudio needed), w2v-BERT's fbank features item by item, and frames counted by the
semantic branch (the DAC latent is cut to them). The package runs w2v-BERT under fp16 autocast on a GPU; this runs
in the weights' dtype.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import audio
from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    canonical,
    int_option,
    load_weights,
    parse_spec,
    peer_tokenizer,
    read_state,
    require,
    select_q,
)

FILES = {"12hz_v1": "dualcodec_12hz_16384_4096.safetensors", "25hz_v1": "dualcodec_25hz_16384_1024.safetensors"}
STATS = "w2vbert2_mean_var_stats_emilia.pt"
SEMANTIC_LAYER = 17  # hidden_states[17] of w2v-BERT 2.0 (the package's output_idx)
SEMANTIC_RATE, SEMANTIC_SR = 50, 16000  # w2v-BERT frames per second, at 16 kHz
FBANK_WINDOW, FBANK_HOP, FBANK_STACK = 400, 160, 2  # w2v_bert_features's fbank: 25 ms / 10 ms, 2 frames stacked


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "dualcodec")
    if "w2v" not in options:
        raise CheckpointError(f"{spec}: give w2v-BERT 2.0's folder too: dualcodec:DIR?w2v=W2V_DIR "
                              "(facebook/w2v-bert-2.0; the zoo's dualcodec-12hz fetches both)")
    weights = _weights_file(path, options, spec)
    stats = weights.parent / STATS
    if not stats.is_file():
        raise CheckpointError(f"{weights.parent}: no {STATS} (w2v-BERT's feature statistics) beside the weights")
    transformers = require("transformers", "dualcodec", spec)
    require("dac.model", "dualcodec", spec)
    state = read_state(weights)
    model = DualCodecModel.from_state(state, weights, causal=int_option(options, "causal", spec) != 0)
    load_weights(model.codec, state, weights)
    model.load_semantic(_w2v_bert(Path(options["w2v"]).expanduser(), transformers), read_state(stats), stats)
    q = select_q(options, spec, model.num_codebooks)
    files = [weights, stats, *_w2v_files(Path(options["w2v"]).expanduser())]
    return tokenizer(model, q, checkpoint_identity(files), device)


def tokenizer(model: DualCodecModel, q: int, checkpoint: dict, device=None) -> Tokenizer:
    sizes = model.codebook_sizes[:q]
    cfg = PeerConfig("dualcodec", "dualcodec", model.sample_rate, model.hop_length, q, max(sizes),
                     canonical({**model.arch, "codebook_sizes": sizes}))
    parts = PeerParts(
        encode=lambda m, wav: m.latents(wav),
        quantize=lambda m, z, n_q: m.quantize(z, n_q),
        dequantize=lambda m, codes: m.dequantize(codes),
        decode=lambda m, z: m.codec.dac.decoder(z),
        num_frames=model.num_frames, min_samples=model.min_samples)
    notes = (f"codebook 0 semantic ({sizes[0]} codes, w2v-BERT 2.0 layer {SEMANTIC_LAYER}), codebooks 1.. acoustic "
             f"({model.codebook_sizes[-1]} codes, DAC residual VQ of the rest); 16 kHz semantic input by "
             "torchaudio's sinc resampling")
    tok = peer_tokenizer(model, parts, cfg, dim=model.codec.dac.latent_dim + model.semantic_width,
                         checkpoint=checkpoint, package="descript-audio-codec", device=device, notes=notes,
                         codebook_sizes=sizes)
    tok.name = f"dualcodec-{model.frame_rate:g}hz-q{q}"
    tok._streams = {"semantic": (0, 1), "acoustic": (1, q)} if q > 1 else {"semantic": (0, 1)}
    return tok


def _weights_file(path: Path, options: dict[str, str], spec: str | None) -> Path:
    if path.is_file():
        return path
    name = options.get("model")
    if name is not None:
        if name not in FILES:
            raise CheckpointError(f"{spec}: model={name!r}; choose one of {', '.join(FILES)}")
        file = path / FILES[name]
        if not file.is_file():
            raise CheckpointError(f"{path}: no {FILES[name]} (model={name})")
        return file
    found = sorted(p for p in path.glob("dualcodec_*.safetensors"))
    if len(found) != 1:
        raise CheckpointError(f"{path}: expected one dualcodec_*.safetensors, found {[p.name for p in found] or 'none'}"
                              f"; pick one with ?model={'|'.join(FILES)}")
    return found[0]


def _w2v_bert(folder: Path, transformers) -> nn.Module:
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a w2v-BERT 2.0 folder (config.json + model.safetensors)")
    config = transformers.Wav2Vec2BertConfig.from_pretrained(folder, local_files_only=True)
    if config.num_hidden_layers < SEMANTIC_LAYER:
        raise CheckpointError(f"{folder}: w2v-BERT with {config.num_hidden_layers} layers; DualCodec reads the "
                              f"{SEMANTIC_LAYER}th")
    config.num_hidden_layers = SEMANTIC_LAYER  # the layers past it are never run: their weights are left unread
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # ... which transformers would list, key by key
    try:
        return transformers.Wav2Vec2BertModel.from_pretrained(folder, config=config, local_files_only=True).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)


def _w2v_files(folder: Path) -> list[Path]:
    return [folder / "config.json", *(sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")))]


class ConvNeXtBlock(nn.Module):
    """DualCodec's ConvNeXt block (Vocos'): depthwise conv (causal: padded on the left), LayerNorm, MLP, residual."""

    def __init__(self, dim: int, hidden: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=0 if causal else 3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(F.pad(x, (6, 0)) if self.causal else x)
        return x + self.pwconv2(self.act(self.pwconv1(self.norm(y.transpose(1, 2))))).transpose(1, 2)


class _Codec(nn.Module):
    """The checkpoint's modules under its own names: `dac`, `convnext_encoder`, `semantic_vq`, `convnext_decoder`."""

    def __init__(self, arch: dict, causal: bool) -> None:
        super().__init__()
        from dac.model.dac import DAC
        from dac.nn.layers import WNConv1d
        from dac.nn.quantize import ResidualVectorQuantize

        self.dac = DAC(encoder_dim=arch["encoder_dim"], encoder_rates=arch["encoder_rates"],
                       latent_dim=arch["latent_dim"], decoder_dim=arch["decoder_dim"],
                       decoder_rates=arch["decoder_rates"], n_codebooks=arch["n_codebooks"],
                       codebook_size=arch["codebook_size"], codebook_dim=arch["codebook_dim"],
                       sample_rate=arch["sample_rate"])
        width, inner = arch["convnext_dim"], arch["convnext_hidden"]
        blocks = arch["convnext_layers"]
        self.convnext_encoder = nn.Sequential(WNConv1d(arch["semantic_width"], width, kernel_size=1),
                                              *(ConvNeXtBlock(width, inner, causal) for _ in range(blocks)))
        self.semantic_vq = ResidualVectorQuantize(width, n_codebooks=1, codebook_size=arch["semantic_codebook_size"],
                                                  codebook_dim=arch["semantic_codebook_dim"])
        self.convnext_decoder = nn.Sequential(*(ConvNeXtBlock(width, inner, causal) for _ in range(blocks)),
                                              WNConv1d(width, arch["latent_dim"], kernel_size=1))


class DualCodecModel(nn.Module):
    """The codec (the checkpoint) and its semantic front end (w2v-BERT 2.0 and its feature statistics)."""

    def __init__(self, arch: dict, causal: bool = True) -> None:
        super().__init__()
        self.arch, self.codec = arch, _Codec(arch, causal)
        self.sample_rate, self.semantic_width = arch["sample_rate"], arch["semantic_width"]
        self.hop_length = math.prod(arch["encoder_rates"])
        self.frame_rate = self.sample_rate / self.hop_length
        self.pool = round(SEMANTIC_RATE / self.frame_rate)  # w2v-BERT frames per codec frame
        self.num_codebooks = 1 + arch["n_codebooks"]
        self.codebook_sizes = [arch["semantic_codebook_size"]] + [arch["codebook_size"]] * arch["n_codebooks"]
        self.min_samples = math.ceil((FBANK_WINDOW + FBANK_HOP * (FBANK_STACK * self.pool - 1)) * self.sample_rate
                                     / SEMANTIC_SR)

    @classmethod
    def from_state(cls, state: dict[str, Tensor], path: Path, causal: bool = True) -> DualCodecModel:
        return cls(_arch_from(state, path), causal)

    def load_semantic(self, w2v: nn.Module, stats: object, path: Path) -> None:
        if not (isinstance(stats, dict) and {"mean", "var"} <= stats.keys()):
            raise CheckpointError(f"{path}: not w2v-BERT feature statistics (a dict with mean and var)")
        if w2v.config.hidden_size != self.semantic_width:
            raise CheckpointError(f"{path}: w2v-BERT is {w2v.config.hidden_size} wide; the codec reads "
                                  f"{self.semantic_width}")
        self.w2v = w2v
        self.register_buffer("semantic_mean", torch.as_tensor(stats["mean"]).float(), persistent=False)
        self.register_buffer("semantic_std", torch.as_tensor(stats["var"]).float().sqrt(), persistent=False)
        import transformers

        from .xcodec2 import w2v_bert_features

        self.features = w2v_bert_features(transformers, SEMANTIC_SR)

    def num_frames(self, samples: Tensor) -> Tensor:
        """The semantic branch's frames: 16 kHz samples -> fbank frames -> stacked pairs -> pooled."""
        n16 = torch.div(samples * SEMANTIC_SR + self.sample_rate - 1, self.sample_rate, rounding_mode="floor")
        fbank = torch.div(n16 - FBANK_WINDOW, FBANK_HOP, rounding_mode="floor") + 1
        return torch.div(torch.div(fbank.clamp(min=0), FBANK_STACK, rounding_mode="floor"), self.pool,
                         rounding_mode="floor")

    def latents(self, wav: Tensor) -> Tensor:
        """wav [B, 1, T] -> [B, semantic width + DAC latent, frames]: the normalised, pooled w2v-BERT features and
        the DAC encoder's latent, cut to the same frames."""
        wav16 = audio.sinc_resample(wav.float(), self.sample_rate, SEMANTIC_SR)
        mel = torch.cat([self.features(item.cpu(), sampling_rate=SEMANTIC_SR, return_tensors="pt").input_features
                         for item in wav16[:, 0]]).to(wav.device)
        hidden = self.w2v(input_features=mel.to(wav.dtype), output_hidden_states=True).hidden_states[SEMANTIC_LAYER]
        semantic = F.avg_pool1d(((hidden - self.semantic_mean) / self.semantic_std).transpose(1, 2), self.pool)
        dac = self.codec.dac
        acoustic = dac.encoder(F.pad(wav, (0, -wav.shape[-1] % self.hop_length)))
        return torch.cat([semantic, acoustic[..., :semantic.shape[-1]]], dim=1)

    def quantize(self, z: Tensor, n_q: int) -> Tensor:
        semantic, acoustic = z[:, :self.semantic_width], z[:, self.semantic_width:]
        c = self.codec
        z_semantic, codes = c.semantic_vq(c.convnext_encoder(semantic))[:2]
        if n_q == 1:
            return codes
        residual = acoustic - c.convnext_decoder(z_semantic)
        return torch.cat([codes, c.dac.quantizer(residual, n_q - 1)[1]], dim=1)

    def dequantize(self, codes: Tensor) -> Tensor:
        c = self.codec
        z = c.convnext_decoder(c.semantic_vq.from_codes(codes[:, :1])[0])
        return z if codes.shape[1] == 1 else z + c.dac.quantizer.from_codes(codes[:, 1:])[0]


def _arch_from(state: dict[str, Tensor], path: Path) -> dict:
    """The architecture from the weights' shapes: DAC widths and strides, codebook counts, sizes and widths."""

    def shape(key: str) -> tuple[int, ...]:
        for k in (key, key.replace(".weight", ".weight_v")):
            if k in state:
                return tuple(state[k].shape)
        raise CheckpointError(f"{path}: no {key}: not DualCodec weights in the dualcodec package's names")

    def indices(pattern: str) -> list[int]:
        return sorted({int(m[1]) for k in state if (m := re.match(pattern, k))})

    enc_blocks = indices(r"dac\.encoder\.block\.(\d+)\.block\.4\.")
    dec_blocks = indices(r"dac\.decoder\.model\.(\d+)\.block\.1\.")
    return {
        "sample_rate": 24000,
        "encoder_dim": shape("dac.encoder.block.0.weight")[0],
        "encoder_rates": [shape(f"dac.encoder.block.{i}.block.4.weight")[-1] // 2 for i in enc_blocks],
        "latent_dim": shape("dac.quantizer.quantizers.0.in_proj.weight")[1],
        "decoder_dim": shape("dac.decoder.model.0.weight")[0],
        "decoder_rates": [shape(f"dac.decoder.model.{i}.block.1.weight")[-1] // 2 for i in dec_blocks],
        "n_codebooks": len(indices(r"dac\.quantizer\.quantizers\.(\d+)\.")),
        "codebook_size": shape("dac.quantizer.quantizers.0.codebook.weight")[0],
        "codebook_dim": shape("dac.quantizer.quantizers.0.codebook.weight")[1],
        "semantic_width": shape("convnext_encoder.0.weight")[1],
        "convnext_dim": shape("convnext_encoder.0.weight")[0],
        "convnext_hidden": shape("convnext_encoder.1.pwconv1.weight")[0],
        "convnext_layers": len(indices(r"convnext_encoder\.(\d+)\.dwconv\.")),
        "semantic_codebook_size": shape("semantic_vq.quantizers.0.codebook.weight")[0],
        "semantic_codebook_dim": shape("semantic_vq.quantizers.0.codebook.weight")[1],
    }
