"""SNAC (multi-scale neural audio codec) as a speechtok tokenizer: `speechtok.load("snac:DIR[?q=N]")`.

DIR is a SNAC checkpoint directory as hubertsiuzdak/snac_24khz ships it: `config.json` (the `SNAC(**config)`
arguments) + `pytorch_model.bin` (a state dict, read with `weights_only=True`; or `model.safetensors`).

SNAC's codebooks run at different rates (`vq_strides`, e.g. 4, 2, 1 -> 12, 23, 47 Hz at 24 kHz). speechtok codes
are one grid `[B, Q, T]` at the finest rate, so codebook i repeats each of its codes `vq_strides[i]` times;
decode reads every `stride`-th. `bitrate` counts each code once (the package's figure: 0.98 kbps for 24 kHz).
SNAC's decoder adds noise (`noise=True`): decode draws it from a generator seeded with 0, so the same codes
always give the same audio, without touching the global RNG.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
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
    select_q,
)

WEIGHTS = ("pytorch_model.bin", "model.safetensors")
NOISE_SEED = 0


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "snac")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a SNAC checkpoint is a directory with config.json and pytorch_model.bin")
    config = read_json(path / "config.json")
    weights = next((path / w for w in WEIGHTS if (path / w).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{path}: missing pytorch_model.bin (or model.safetensors)")
    snac = require("snac", "snac", spec)
    try:
        model = snac.SNAC(**config)
    except TypeError as e:
        raise CheckpointError(f"{path / 'config.json'}: not a SNAC config ({e})") from None
    load_weights(model, read_state(weights), weights)
    strides = list(model.vq_strides)
    q = select_q(options, spec, len(strides))
    hop = int(model.hop_length)
    cfg = PeerConfig("snac", "snac", model.sampling_rate, hop, q, model.codebook_size, canonical(config))
    parts = PeerParts(encode=lambda m, wav: m.encoder(m.preprocess(wav)), quantize=_quantize,
                      dequantize=_dequantize, decode=_decode)
    rate = model.sampling_rate / hop
    return peer_tokenizer(model, parts, cfg, dim=model.latent_dim,
                          checkpoint=checkpoint_identity([path / "config.json", weights]), package="snac",
                          device=device, codebook_rates=[rate / s for s in strides[:q]],
                          notes="codebook i repeats each code vq_strides[i] times on the finest grid; "
                                f"decoder noise seeded with {NOISE_SEED}")


def _quantize(m, z: Tensor, n_q: int) -> Tensor:
    """latents [B, D, T] -> codes [B, n_q, T], coarse codebooks repeated onto the finest grid."""
    _, codes = m.quantizer(z)  # codebook i: [B, T / stride_i]
    grid = [c.repeat_interleave(vq.stride, dim=-1) for c, vq in zip(codes[:n_q], m.quantizer.quantizers)]
    return torch.stack(grid, dim=1)


def _dequantize(m, codes: Tensor) -> Tensor:
    """codes [B, q, T] -> latents [B, D, T]; the first q codebooks (residual, so fewer is coarser)."""
    frames = codes.shape[-1]
    unit = math.lcm(m.vq_strides[0], m.attn_window_size or 1)
    padded = torch.nn.functional.pad(codes, (0, -frames % unit), mode="replicate") if frames % unit else codes
    z_q = 0.0
    for i, vq in enumerate(m.quantizer.quantizers[: codes.shape[1]]):
        z_q_i = vq.out_proj(vq.decode_code(padded[:, i, :: vq.stride]))  # one code per stride frames
        z_q = z_q + z_q_i.repeat_interleave(vq.stride, dim=-1)
    return z_q[..., :frames] if frames % unit == 0 else z_q  # the decoder wants whole units; decode trims


def _decode(m, z: Tensor) -> Tensor:
    devices = [z.device] if z.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(NOISE_SEED)
        return m.decoder(z)
