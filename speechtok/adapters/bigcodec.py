"""BigCodec (Xin et al. 2024; X-Codec2's acoustic predecessor) as a speechtok tokenizer:
`speechtok.load("bigcodec:PATH")`, or the zoo's `bigcodec`.

One codebook of 8,192 codes at 80 Hz from 16 kHz speech (1.04 kbps): a convolutional encoder with an LSTM, a
factorised VQ (8-d codes), a mirrored decoder. The modules are the `bigcodec` package's (the publisher's code,
packaged); PATH is either

- the publisher's `bigcodec.pt` or its folder (Alethia/BigCodec: `{"CodecEnc": state, "generator": state}`,
  read with `weights_only=True`), its architecture read from the weights' shapes, or
- the `bigcodec` package's hub layout (a folder with `config.json` of its constructor arguments and
  `model.safetensors`).

The front end is the publisher's `inference.py`: the waveform padded by `200 - T % 200` samples (a whole extra
frame when T is a multiple of the hop), so T samples give T // 200 + 1 codes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..layers.seanet import WEIGHT_NORM_SUFFIXES
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    canonical,
    load_weights,
    parse_spec,
    peer_tokenizer,
    read_json,
    read_state,
    require,
    single_file,
)

ARGS = ("ngf", "use_rnn", "rnn_bidirectional", "rnn_num_layers", "up_ratios", "dilations", "out_channels",
        "codebook_size", "vq_num_quantizers", "codebook_dim")  # the package's BigCodec(...) arguments


def load(spec: str | None, device=None) -> Tokenizer:
    path, _ = parse_spec(spec, "bigcodec")
    bc = require("bigcodec", "bigcodec", spec)
    if path.is_dir() and (path / "config.json").is_file():
        files = [path / "config.json", path / "model.safetensors"]
        arch = _package_arch(read_json(files[0]), files[0])
        state = read_state(files[1])
    else:
        path = single_file(path, (".pt", ".pth", ".ckpt"), "BigCodec checkpoint (bigcodec.pt)")
        files = [path]
        ckpt = read_state(path)
        if not isinstance(ckpt, dict) or not {"CodecEnc", "generator"} <= ckpt.keys():
            raise CheckpointError(f"{path}: not a BigCodec checkpoint (a dict with 'CodecEnc' and 'generator')")
        state = {**{f"encoder.{k}": v for k, v in ckpt["CodecEnc"].items()},
                 **{f"decoder.{k}": v for k, v in ckpt["generator"].items()}}
        arch = _arch_from(state, path)
    model = build(bc, arch)
    load_weights(model, _weight_norm_names(state, model.state_dict().keys()), files[-1])
    return tokenizer(model.eval(), arch, checkpoint_identity(files), device)


def build(bc, arch: dict) -> nn.Module:
    """The package's encoder and decoder, named as its BigCodec names them. The package layout is built by the
    package's own BigCodec (whose decoder keeps its defaults: an LSTM of 2 layers over 1536 channels); the
    publisher's from each module's arguments read off the weights."""
    if "decoder" not in arch:
        codec = bc.BigCodec(**{k: arch[k] for k in ARGS})
        return nn.ModuleDict({"encoder": codec.encoder, "decoder": codec.decoder})
    enc = {k: arch[k] for k in ("ngf", "use_rnn", "rnn_bidirectional", "rnn_num_layers", "up_ratios", "dilations",
                                "out_channels")}
    return nn.ModuleDict({
        "encoder": bc.CodecEncoder(**enc),
        "decoder": bc.CodecDecoder(
            in_channels=arch["out_channels"], up_ratios=tuple(reversed(arch["up_ratios"])),
            dilations=arch["dilations"], vq_num_quantizers=arch["vq_num_quantizers"], vq_dim=arch["out_channels"],
            codebook_size=arch["codebook_size"], codebook_dim=arch["codebook_dim"], **arch["decoder"])})


def tokenizer(model: nn.Module, arch: dict, checkpoint: dict, device=None) -> Tokenizer:
    hop = math.prod(int(r) for r in arch["up_ratios"])
    cfg = PeerConfig("bigcodec", "bigcodec-package", 16000, hop, int(arch["vq_num_quantizers"]),
                     int(arch["codebook_size"]), canonical(arch))
    parts = PeerParts(
        encode=lambda m, wav: m["encoder"](F.pad(wav, (0, hop - wav.shape[-1] % hop))),
        quantize=lambda m, z, n_q: m["decoder"](z, vq=True)[1][:, :n_q],  # [B, Q, T]
        dequantize=lambda m, codes: m["decoder"].vq2emb(codes.transpose(1, 2)).transpose(1, 2),
        decode=lambda m, z: m["decoder"](z, vq=False),
        num_frames=lambda n: n // hop + 1, min_samples=1)
    tok = peer_tokenizer(model, parts, cfg, dim=int(arch["out_channels"]), checkpoint=checkpoint,
                         package="bigcodec", device=device,
                         notes=f"{arch['codebook_size']} codes at {16000 / hop:g} Hz (factorised VQ)")
    tok.name = "bigcodec"
    return tok


def _package_arch(config: dict, path: Path) -> dict:
    missing = [k for k in ARGS if k not in config]
    if missing:
        raise CheckpointError(f"{path}: not a bigcodec package config (missing {', '.join(missing)})")
    return {k: config[k] for k in ARGS}


def _arch_from(state: dict[str, Tensor], path: Path) -> dict:
    """The publisher's BigCodec architecture from its weights' shapes."""

    def shape(key: str) -> tuple[int, ...]:
        for name in (key, key.replace(".weight", ".weight_v"),
                     key.replace(".weight", ".parametrizations.weight.original1")):
            if name in state:
                return tuple(state[name].shape)
        raise CheckpointError(f"{path}: no {key}: not BigCodec weights")

    blocks = sorted({int(m[1]) for k in state if (m := re.match(r"encoder\.block\.(\d+)\.block\.4\.", k))})
    last = max(int(m[1]) for k in state if (m := re.match(r"encoder\.block\.(\d+)\.", k)))
    codebook = shape("decoder.quantizer.layers.0._codebook.weight")
    return {
        "ngf": shape("encoder.block.0.weight")[0], **_rnn(state, "encoder.block"),
        "up_ratios": [shape(f"encoder.block.{i}.block.4.weight")[-1] // 2 for i in blocks],
        "dilations": [1, 3, 9], "out_channels": shape(f"encoder.block.{last}.weight")[0],
        "codebook_size": codebook[0], "codebook_dim": codebook[1],
        "vq_num_quantizers": len({k.split(".")[3] for k in state if k.startswith("decoder.quantizer.layers.")}),
        "decoder": {"upsample_initial_channel": shape("decoder.model.0.weight")[0], **_rnn(state, "decoder.model")}}


def _rnn(state: dict[str, Tensor], prefix: str) -> dict:
    """use_rnn, rnn_num_layers and rnn_bidirectional of the ResLSTM under `prefix` (if any)."""
    layers = [k for k in state if re.match(rf"{re.escape(prefix)}\.\d+\.lstm\.weight_ih_l\d+$", k)]
    reverse = any(k.startswith(prefix) and ".lstm." in k and k.endswith("_reverse") for k in state)
    return {"use_rnn": bool(layers), "rnn_num_layers": max(len(layers), 1), "rnn_bidirectional": reverse}


def _weight_norm_names(state: dict[str, Tensor], wanted) -> dict[str, Tensor]:
    """weight_g / weight_v <-> parametrizations.weight.original0 / 1, whichever the model's modules use."""
    wanted = set(wanted)
    old_names, new_names = WEIGHT_NORM_SUFFIXES
    renames = [*zip(old_names, new_names), *zip(new_names, old_names)]
    out = {}
    for key, value in state.items():
        if key not in wanted:
            for old, new in renames:
                if key.endswith(old) and key[: -len(old)] + new in wanted:
                    key = key[: -len(old)] + new
                    break
        out[key] = value
    return out
