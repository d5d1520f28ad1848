"""EnCodec (Défossez et al.) as a speechtok tokenizer: `speechtok.load("encodec:PATH[?q=N]")`.

PATH is either
- an `encodec` package checkpoint: `encodec_24khz-d7cc33bc.th` (a state dict; `speechtok convert torch-pickle`
  makes a `.safetensors` twin of a file that needs a full unpickle), or a directory holding one; or
- a Hugging Face `EncodecModel` directory (`config.json` + `model.safetensors`, as facebook/encodec_24khz).

`?q=N` exposes the first N of the RVQ's codebooks (the 24 kHz model has 32 = 24 kbps; 8 = 6 kbps; the 48 kHz
model 16 = 24 kbps at 150 frames/s).

The 48 kHz model (`encodec_48khz-7e698e3e.th`) is stereo and encodes 1 s segments overlapping by 1%, each
normalised by its loudness: it runs as a segmented tokenizer (mono input goes to both channels, the two
decoded channels are averaged; each segment's gain travels in `Codes.scales`). A Hugging Face directory with
`chunk_length_s` (facebook/encodec_48khz) runs the same way; one that normalises without chunks has one segment
per file.
"""

from __future__ import annotations

import math
import pickle
import sys
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    arch_json,
    canonical,
    hf_files,
    load_weights,
    parse_spec,
    peer_tokenizer,
    read_json,
    read_state,
    require,
    select_q,
    single_file,
)

WEIGHT_SUFFIXES = (".th", ".pt", ".pth", ".bin", ".safetensors")
# the first conv's weight [filters, channels, 7]: 1 channel = 24 kHz, 2 = 48 kHz (weight-normed in the 24 kHz model)
FIRST_CONV = ("encoder.model.0.conv.conv.weight_v", "encoder.model.0.conv.conv.weight")


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "encodec")
    if path.is_dir() and (path / "config.json").is_file():
        return _load_transformers(path, options, spec, device)
    file = single_file(path, WEIGHT_SUFFIXES, "encodec_*.th checkpoint or a Hugging Face config.json", "encodec_")
    return _load_package(file, options, spec, device)


# -- the `encodec` package ----------------------------------------------------------------------------------------


def _load_package(file: Path, options: dict, spec: str, device) -> Tokenizer:
    state = read_state(file)
    first = next((state[k] for k in FIRST_CONV if isinstance(state, dict) and k in state), None)
    if first is None:
        raise CheckpointError(f"{file}: not an EnCodec state dict (no {FIRST_CONV[1]})")
    encodec = require("encodec", "encodec", spec)
    stereo = first.shape[1] == 2
    factory = "encodec_model_48khz" if stereo else "encodec_model_24khz"
    model = getattr(encodec.EncodecModel, factory)(pretrained=False)
    load_weights(model, state, file)
    q = select_q(options, spec, model.quantizer.n_q)
    cfg = PeerConfig("encodec", "encodec-package", model.sample_rate, int(model.encoder.hop_length), q,
                     model.quantizer.bins, canonical({"model": factory, "n_q": model.quantizer.n_q}))
    parts = PeerParts(  # the bare model forward; mono in, mono out
        encode=lambda m, wav: m.encoder(wav.expand(-1, m.channels, -1)),
        quantize=lambda m, z, n_q: m.quantizer.vq.encode(z, n_q=n_q).transpose(0, 1),  # [K, B, T] -> [B, K, T]
        dequantize=lambda m, codes: m.quantizer.decode(codes.transpose(0, 1)),
        decode=lambda m, z: m.decoder(z).mean(dim=1, keepdim=True),
    )
    segment = (model.segment_length, model.segment_stride) if model.segment_length else None
    return _tokenizer(model, parts, cfg, segment, model.normalize, device, dim=model.encoder.dimension,
                      checkpoint=checkpoint_identity([file]), package="encodec")


def _tokenizer(model, parts: PeerParts, cfg: PeerConfig, segment: tuple[int, int] | None, normalize: bool, device,
               **common) -> Tokenizer:
    """Both formats: a whole-file tokenizer, or a segmented one for models that cut the input into segments
    (`segment` = (length, stride)) or normalise it (a whole file is then one segment with its gain)."""
    if segment is None and not normalize:
        return peer_tokenizer(model, parts, cfg, device=device, **common)
    return peer_tokenizer(model, parts, cfg, device=device, segments=segment or (sys.maxsize, sys.maxsize),
                          normalize_segments=normalize, **common)


# -- Hugging Face transformers -------------------------------------------------------------------------------------


def _load_transformers(path: Path, options: dict, spec: str, device) -> Tokenizer:
    config = read_json(path / "config.json")
    if config.get("model_type") != "encodec":
        raise CheckpointError(f"{path / 'config.json'}: model_type {config.get('model_type')!r}, not 'encodec'")
    transformers = require("transformers", "mimi", spec)
    try:
        model = transformers.EncodecModel.from_pretrained(path, local_files_only=True)
    except Exception as e:  # transformers' own advice for a pickle is weights_only=False: never ours to give
        if "weights_only" not in str(e) and not isinstance(e, pickle.UnpicklingError):
            raise
        raise CheckpointError(f"{path}: its pytorch_model.bin holds pickled objects that only a full unpickle, "
                              "which can run code inside the file, would read; convert it once with speechtok "
                              "convert torch-pickle (--unpickle, if you trust it) or use the model.safetensors "
                              "release") from None
    mc = model.config
    hop = int(math.prod(mc.upsampling_ratios))
    q = select_q(options, spec, model.quantizer.num_quantizers)
    cfg = PeerConfig("encodec", "transformers", mc.sampling_rate, hop, q, mc.codebook_size,
                     arch_json(config))
    parts = PeerParts(encode=lambda m, wav: m.encoder(wav.expand(-1, m.config.audio_channels, -1)),
                      quantize=_hf_quantize,
                      dequantize=lambda m, codes: m.quantizer.decode(codes.transpose(0, 1)),
                      decode=lambda m, z: m.decoder(z).mean(dim=1, keepdim=True))
    segment = (mc.chunk_length, mc.chunk_stride) if mc.chunk_length else None
    return _tokenizer(model, parts, cfg, segment, mc.normalize, device, dim=mc.hidden_size,
                      checkpoint=checkpoint_identity(hf_files(path)), package="transformers")


def _hf_quantize(m, z: torch.Tensor, n_q: int) -> torch.Tensor:
    """EncodecResidualVectorQuantizer.encode picks its depth from a bandwidth; this is its loop at depth n_q."""
    residual, codes = z, []
    for layer in m.quantizer.layers[:n_q]:
        indices = layer.encode(residual)
        residual = residual - layer.decode(indices)
        codes.append(indices)
    return torch.stack(codes, dim=1)  # [B, n_q, T]
