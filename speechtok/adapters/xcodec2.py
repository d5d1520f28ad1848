"""X-Codec2 (Llasa's speech tokenizer) as a speechtok tokenizer: `speechtok.load("xcodec2:DIR")`, or the zoo's
`xcodec2`.

One codebook of 65,536 FSQ codes at 50 Hz from 16 kHz speech: a w2v-BERT 2.0 semantic branch (its first 16
layers) and a convolutional acoustic branch, concatenated, projected and quantised; a Vocos-style transformer
decoder with an iSTFT head. DIR is either

- the `transformers` layout (`config.json` with model_type "xcodec2" and a `semantic_model_config`, plus
  `model.safetensors`: hf-audio/xcodec2), loaded by `transformers.Xcodec2Model` from local files, or
- the publisher's layout (HKUSTAudio/xcodec2: `config.json` with `semantic_hidden_size`, and `model.safetensors`
  in the `xcodec2` package's key names), converted in memory into the same model (`convert_official`).

The front end is the `xcodec2` package's: the waveform padded by `hop - T % hop` samples (a whole extra frame when T
is a multiple of the hop), and the w2v-BERT fbank features of that, padded by half a hop each side. So T samples give
T // 320 + 1 codes, and each item is read alone (the peer has no padding mask).

NeuCodec (`adapters/neucodec.py`) is the same architecture with a 24 kHz decoder; it shares this module's
conversion and front end.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import audio
from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..layers.seanet import fold_weight_norm_keys
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    arch_json,
    hf_files,
    parse_spec,
    peer_tokenizer,
    read_json,
    read_state,
    require,
)

HEADS = 16  # attention heads of the published decoder and of w2v-BERT 2.0 (not recorded in the weights)
SEMANTIC_LAYER = 16  # the package reads w2v-BERT's 16th hidden state


def load(spec: str | None, device=None) -> Tokenizer:
    path, _ = parse_spec(spec, "xcodec2")
    config = read_json(path / "config.json") if path.is_dir() else {}
    if config.get("model_type") != "xcodec2":
        raise CheckpointError(f"{path}: not an X-Codec2 directory (config.json with model_type 'xcodec2')")
    files = hf_files(path)
    transformers = require("transformers", "xcodec2", spec)
    if "semantic_model_config" in config:
        model = transformers.Xcodec2Model.from_pretrained(path, local_files_only=True)
    else:
        model = convert_official(read_state(files[1]), files[1])
    return tokenizer(model, checkpoint_identity(files), device)


def tokenizer(model: torch.nn.Module, checkpoint: dict, device=None) -> Tokenizer:
    """A `transformers` Xcodec2Model or NeuCodecModel (weights loaded) behind the speechtok API, at its encoder's
    rate. NeuCodec's 24 kHz decoder output is resampled to that rate (soxr), so encode and decode share one."""
    mc = model.config
    family = mc.model_type
    neucodec = family == "neucodec"
    rate = int(mc.input_sampling_rate if neucodec else mc.sampling_rate)
    hop = int(mc.encoder_hop_length if neucodec else mc.hop_length)
    size = math.prod(int(level) for level in mc.quantization_levels)
    cfg = PeerConfig(family, "transformers", rate, hop, 1, size, arch_json(mc.to_dict()))
    features = w2v_bert_features(require("transformers", family, family), rate)
    out_rate = int(mc.output_sampling_rate) if neucodec else rate
    parts = PeerParts(
        encode=lambda m, wav: _latents(m, wav, features, hop, rate, neucodec),
        quantize=lambda m, z, n_q: m.quantizer(z.transpose(1, 2))[1].transpose(1, 2),  # [B, T, 1] -> [B, 1, T]
        dequantize=lambda m, codes: m.quantizer.from_codes(codes.transpose(1, 2)).transpose(1, 2),
        decode=lambda m, z: _resampled(m.acoustic_decoder(z.transpose(1, 2)), out_rate, rate),
        # NeuCodec's fbank has no half-hop padding: one frame fewer, and a frame needs a whole hop
        num_frames=(lambda n: n // hop) if neucodec else (lambda n: n // hop + 1), min_samples=hop if neucodec else 1)
    dim = mc.hidden_size + mc.semantic_model_config.hidden_size
    notes = f"one FSQ codebook of {size} codes at {rate / hop:g} Hz; w2v-BERT semantic + acoustic encoder"
    if neucodec:
        notes += f"; the decoder's {out_rate // 1000} kHz output is resampled to {rate // 1000} kHz"
    tok = peer_tokenizer(model, parts, cfg, dim=dim, checkpoint=checkpoint, package="transformers", device=device,
                         notes=notes)
    tok.name = family
    return tok


def w2v_bert_features(transformers, sample_rate: int):
    """w2v-BERT 2.0's fbank extractor (facebook/w2v-bert-2.0's preprocessor: 80 bins, two frames stacked), numpy,
    no torchaudio: X-Codec2's, NeuCodec's and DualCodec's front end."""
    return transformers.SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=sample_rate,
                                                    padding_value=1.0, stride=2)


def _latents(model, wav: Tensor, features, hop: int, rate: int, neucodec: bool) -> Tensor:
    """wav [B, 1, T] -> the quantiser's input [B, D, frames], as the packages' `encode_code` computes it (their
    fbank front end item by item)."""
    wav = F.pad(wav, (0, hop - wav.shape[-1] % hop))
    mel = torch.cat([features(item if neucodec else F.pad(item[0], (hop // 2, hop // 2)), sampling_rate=rate,
                              return_tensors="pt").input_features for item in wav.float().cpu()])
    semantic = model.semantic_encoder(mel.to(wav.device)).last_hidden_state.transpose(1, 2)
    semantic, acoustic = model.semantic_adapter(semantic), model.acoustic_encoder(wav)
    frames = min(semantic.shape[-1], acoustic.shape[-1])  # NeuCodec's semantic branch is a frame short
    joint = torch.cat([semantic[..., :frames], acoustic[..., :frames]], dim=1)
    return model.fc_encoder(joint.transpose(1, 2)).transpose(1, 2)


def _resampled(wav: Tensor, rate_in: int, rate_out: int) -> Tensor:
    if rate_in == rate_out:
        return wav
    out = audio.resample(wav.detach().float().cpu().numpy(), rate_in, rate_out)
    return torch.from_numpy(out).to(wav.device)


# -- the publisher's layout -------------------------------------------------------------------------------------

# Applied in order to each key of the `xcodec2` package's state dict; then `.act.bias` -> `.act.beta` (SnakeBeta).
RENAMES = [
    (r"^semantic_model\.", "semantic_encoder."),
    (r"^SemanticEncoder_module\.initial_conv\.", "semantic_adapter.conv1."),
    (r"^SemanticEncoder_module\.residual_blocks\.1\.", "semantic_adapter.conv2."),
    (r"^SemanticEncoder_module\.residual_blocks\.3\.", "semantic_adapter.conv3."),
    (r"^SemanticEncoder_module\.final_conv\.", "semantic_adapter.conv4."),
    (r"^CodecEnc\.conv_blocks\.0\.", "acoustic_encoder.conv1."),
    (r"^CodecEnc\.conv_final_block\.0\.", "acoustic_encoder.snake1."),
    (r"^CodecEnc\.conv_final_block\.1\.", "acoustic_encoder.conv2."),
    # an encoder block: residual units 1-3, then the activation and the strided conv
    (r"^CodecEnc\.conv_blocks\.(\d+)\.block\.([0-2])\.", lambda m: f"acoustic_encoder.block.{int(m[1]) - 1}."
                                                                  f"res_unit{int(m[2]) + 1}."),
    (r"^CodecEnc\.conv_blocks\.(\d+)\.block\.3\.", lambda m: f"acoustic_encoder.block.{int(m[1]) - 1}.snake1."),
    (r"^CodecEnc\.conv_blocks\.(\d+)\.block\.4\.", lambda m: f"acoustic_encoder.block.{int(m[1]) - 1}.conv1."),
    (r"(\.res_unit\d)\.block\.0\.", r"\1.snake1."),
    (r"(\.res_unit\d)\.block\.1\.", r"\1.conv1."),
    (r"(\.res_unit\d)\.block\.2\.", r"\1.snake2."),
    (r"(\.res_unit\d)\.block\.3\.", r"\1.conv2."),
    (r"^fc_prior\.", "fc_encoder."),
    (r"^fc_post_a\.", "acoustic_decoder.fc."),
    (r"^generator\.quantizer\.", "quantizer."),
    (r"^generator\.backbone\.transformers\.(\d+)\.att_norm\.", r"acoustic_decoder.layers.\1.input_layernorm."),
    (r"^generator\.backbone\.transformers\.(\d+)\.ffn_norm\.", r"acoustic_decoder.layers.\1.post_attention_layernorm."),
    (r"^generator\.backbone\.transformers\.(\d+)\.att\.c_proj\.", r"acoustic_decoder.layers.\1.self_attn.o_proj."),
    (r"^generator\.backbone\.transformers\.(\d+)\.mlp\.", r"acoustic_decoder.layers.\1.mlp."),
    (r"^generator\.backbone\.final_layer_norm\.", "acoustic_decoder.norm."),
    (r"^generator\.backbone\.", "acoustic_decoder."),
    (r"^generator\.head\.out\.", "acoustic_decoder.head.linear."),
]
# buffers the model computes itself (anti-aliasing filters, the iSTFT window, FSQ tables)
COMPUTED = re.compile(r"(upsample\.filter|lowpass\.filter|istft\.window|quantizer\.layers\.\d+\..*)$")
# parts of the publishers' training graph that inference never runs (NeuCodec's semantic reconstruction head)
UNUSED = ("feature_extractor.", "fc_post_s.", "SemanticDecoder")


def convert_official(state: dict[str, Tensor], path: Path, family: str = "xcodec2", heads: int = HEADS):
    """The `xcodec2` (or `neucodec`) package's weights -> a `transformers` Xcodec2Model (NeuCodecModel) with the
    same behaviour, its config read from the weights' shapes (`heads` is not in them)."""
    import transformers

    state = fold_weight_norm_keys(state)
    config = _config_from(state, heads, path, family)
    model = (transformers.NeuCodecModel if family == "neucodec" else transformers.Xcodec2Model)(config).eval()
    keep = model.state_dict()
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        if COMPUTED.search(key) or key.startswith(UNUSED):
            continue
        if ".att.c_attn." in key:  # fused q, k, v; q and k reordered from interleaved to half-split rotary pairs
            layer = re.search(r"transformers\.(\d+)\.", key)[1]
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3)):
                part = part if name == "v_proj" else _rotary_halves(part, heads)
                converted[f"acoustic_decoder.layers.{layer}.self_attn.{name}.weight"] = part
            continue
        new = _rename(key)
        if new.startswith("semantic_encoder.") and new not in keep:
            continue  # w2v-BERT layers past the 16th and heads the package never runs
        converted[new] = value
    missing, unexpected = keep.keys() - converted.keys(), converted.keys() - keep.keys()
    if missing or unexpected:
        raise CheckpointError(f"{path}: not {family} weights in the {family} package's names (missing "
                              f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.load_state_dict(converted, strict=True)
    return model


def _rename(key: str) -> str:
    for pattern, replacement in RENAMES:
        key = re.sub(pattern, replacement, key)
    return re.sub(r"\.act\.bias$", ".act.beta", key)


def _rotary_halves(w: Tensor, heads: int) -> Tensor:
    """Output rows of q / k from (pair, 2) order per head (the package's rotary embedding rotates neighbours) to
    (2, pair) order (transformers' rotates the two halves)."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def _config_from(state: dict[str, Tensor], heads: int, path: Path, family: str):
    import transformers

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise CheckpointError(f"{path}: no {key}: not {family} weights in the {family} package's names")
        return tuple(state[key].shape)

    hidden = shape("fc_post_a.weight")[0]
    semantic_hidden, semantic_in = shape("semantic_model.feature_projection.projection.weight")
    blocks = sorted({int(m[1]) for k in state if (m := re.match(r"CodecEnc\.conv_blocks\.(\d+)\.block\.4\.", k))})
    strides = [shape(f"CodecEnc.conv_blocks.{i}.block.4.weight")[-1] // 2 for i in blocks]
    depth = len({k.split(".")[3] for k in state if k.startswith("generator.backbone.transformers.")})
    semantic = transformers.Wav2Vec2BertConfig(
        hidden_size=semantic_hidden, feature_projection_input_dim=semantic_in, num_hidden_layers=SEMANTIC_LAYER,
        num_attention_heads=heads,
        intermediate_size=shape("semantic_model.encoder.layers.0.ffn1.intermediate_dense.weight")[0])
    common = dict(
        hidden_size=hidden, intermediate_size=shape("generator.backbone.transformers.0.mlp.fc1.weight")[0],
        num_hidden_layers=depth, num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden // heads,
        encoder_hidden_size=shape("CodecEnc.conv_blocks.0.weight")[0], downsampling_ratios=strides,
        semantic_model_config=semantic.to_dict(), quantization_dim=shape("generator.quantizer.project_in.weight")[1],
        quantization_levels=[4] * shape("generator.quantizer.project_in.weight")[0])  # 4 levels each, as published
    if family != "neucodec":
        return transformers.Xcodec2Config(**common)
    out_hop = (shape("generator.head.out.weight")[0] - 2) // 4  # the iSTFT head's n_fft + 2 rows, n_fft = 4 hops
    return transformers.NeuCodecConfig(**common, input_sampling_rate=16000,
                                       output_sampling_rate=16000 * out_hop // math.prod(strides))
