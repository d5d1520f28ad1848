"""S3Tokenizer (CosyVoice's supervised semantic tokens) as a speechtok tokenizer:
`speechtok.load("s3tokenizer:PATH")`, or the zoo's `s3tokenizer-v2` / `s3tokenizer-v3`.

PATH is the official ONNX file (`speech_tokenizer_v2.onnx` as CosyVoice 2 ships it, `speech_tokenizer_v3.onnx`
as Fun-CosyVoice 3 does; read with `onnx`, which holds no code, and converted by the package's own `onnx2torch` /
`onnx2torch_v3`), or its weights as `.safetensors` / a `.pt` state dict (read with `weights_only=True`). `model`
names the architecture as the package does: `speech_tokenizer_v2_25hz` or `speech_tokenizer_v3_25hz` (v3: twice
the layers, a key projection without bias), read from the file name by default. (v1's VQ layout is not supported
yet.) Widths, depth and mel bins come from the weights; `heads` (20 in every release) cannot, and is an option.

Encode-only: one codebook of semantic tokens (6561 FSQ codes at 25 Hz), no decoder (CosyVoice turns them into
audio with its LM and flow-matching stack). The front end is the package's: log-mel (128 bins, 10 ms hop, the last
frame dropped) normalised by each item's own maximum, so every item is read alone (a padded batch item by item);
T samples give ceil(floor(T / 160) / 4) tokens. Inputs over 30 s go through the package's own 30 s windows with
4 s overlaps.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

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
)

MEL_HOP = 160  # samples per mel frame at 16 kHz
HEADS = 20  # attention heads of every published S3Tokenizer
# the package's names -> (token rate in Hz, codebook size). v1's VQ codebook reads another ONNX layout, not yet
# tested here
MODELS = {"speech_tokenizer_v2_25hz": (25, 3**8), "speech_tokenizer_v3_25hz": (25, 3**8)}


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "s3tokenizer")
    if path.is_dir():
        raise CheckpointError(f"{path}: give the .onnx (or .safetensors / .pt) file itself")
    name = options.get("model") or _model_from_file(path)
    if name not in MODELS:
        raise CheckpointError(f"{spec}: model={name!r}; choose one of {', '.join(MODELS)}")
    s3 = require("s3tokenizer", "s3tokenizer", spec)
    state = _state(path, name)
    model = _model(s3, name, _dims(state, int_option(options, "heads", spec) or HEADS, path))
    load_weights(model, state, path)
    return tokenizer(model, name, checkpoint_identity([path]), device)


def tokenizer(model: torch.nn.Module, name: str, checkpoint: dict, device=None) -> Tokenizer:
    """A package S3Tokenizer model (weights loaded) behind the speechtok API (`benchmarks/speed.py` times one with
    random weights at the published size)."""
    rate, size = MODELS[name]
    hop = 16000 // rate
    arch = canonical({"model": name, **{k: v for k, v in vars(model.config).items() if not k.startswith("_")}})
    cfg = PeerConfig("s3tokenizer", "s3tokenizer-package", 16000, hop, 1, size, arch)
    parts = PeerParts(encode=_mels, quantize=_tokens, num_frames=_frames_rule(hop), min_samples=hop)
    tok = peer_tokenizer(model, parts, cfg, dim=model.config.n_mels, checkpoint=checkpoint, package="s3tokenizer",
                         device=device, notes="encode-only (semantic tokens, no decoder); codes [B, 1, T] at "
                                               f"{rate} Hz; log-mel normalised per item")
    tok.name = f"s3tokenizer-{name.removeprefix('speech_tokenizer_')}"
    return tok


def _model_from_file(path: Path) -> str:
    found = re.search(r"v(\d)", path.stem)
    version = found.group(1) if found else None
    if version in ("2", "3"):
        return f"speech_tokenizer_v{version}_25hz"
    raise CheckpointError(f"{path}: cannot tell the S3Tokenizer version from the file name; add "
                          f"?model=NAME ({', '.join(MODELS)})")


def _model(s3, name: str, dims: dict) -> torch.nn.Module:
    from s3tokenizer.model_v2 import ModelConfig
    from s3tokenizer.model_v3 import ModelConfigV3

    try:
        if "v3" in name:
            return s3.S3TokenizerV3(name, ModelConfigV3(**dims))
        return s3.S3TokenizerV2(name, ModelConfig(**dims))
    except TypeError as e:
        raise CheckpointError(f"s3tokenizer: bad model dimensions {dims} ({e})") from None


def _dims(state: dict, heads: int, path: Path) -> dict:
    """The model's dimensions (`ModelConfig` fields) from its weights."""
    conv = state.get("encoder.conv1.weight")
    if conv is None or conv.ndim != 3:
        raise CheckpointError(f"{path}: no encoder.conv1.weight [state, mels, 3]: not S3Tokenizer weights")
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks.")}
    return {"n_mels": conv.shape[1], "n_audio_state": conv.shape[0], "n_audio_layer": len(layers),
            "n_audio_head": heads}


def _state(path: Path, name: str) -> dict:
    if path.suffix != ".onnx":
        return read_state(path)
    from s3tokenizer.utils import onnx2torch, onnx2torch_v3  # each layout's converter

    try:
        return (onnx2torch_v3 if "v3" in name else onnx2torch)(str(path), None, False)
    except Exception as e:  # noqa: BLE001 - whatever the converter hits in a bad file is the file's fault
        raise CheckpointError(f"{path}: not an S3Tokenizer ONNX file ({type(e).__name__}: {e})"[:300]) from None


def _frames_rule(hop: int):
    stride = hop // MEL_HOP  # mel frames per token: 4 at 25 Hz, 2 at 50 Hz

    def frames(num_samples: Tensor) -> Tensor:
        return -(-(num_samples // MEL_HOP) // stride)

    return frames


def _mels(model, wav: Tensor) -> Tensor:
    """wav [B, 1, T] at 16 kHz -> log-mel [B, 128, floor(T / 160)], each item normalised by its own maximum."""
    from s3tokenizer.utils import log_mel_spectrogram

    return torch.stack([log_mel_spectrogram(w[0], n_mels=model.config.n_mels) for w in wav])


def _tokens(model, mels: Tensor, n_q: int) -> Tensor:
    """log-mel [B, 128, T_mel] (each item whole) -> tokens [B, 1, T_tokens]."""
    lengths = torch.full((mels.shape[0],), mels.shape[-1], device=mels.device)
    codes, _ = model.quantize(mels, lengths)
    return codes[:, None]
