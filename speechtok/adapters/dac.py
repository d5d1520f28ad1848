"""Descript Audio Codec as a speechtok tokenizer: `speechtok.load("dac:PATH[?q=N]")`.

PATH is a `descript-audio-codec` weights file (`weights_16khz.pth`, ...: `{"state_dict", "metadata": {"kwargs"}}`
as `DAC.save(..., package=False)` writes it), read with `weights_only=True`, or its `.safetensors` twin from
`speechtok convert torch-pickle`. The architecture comes from `metadata.kwargs`, as `DAC.load` does.
"""

from __future__ import annotations

import inspect

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
    read_state,
    require,
    select_q,
    single_file,
)


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "dac")
    path = single_file(path, (".pth", ".pt", ".safetensors"), "DAC weights file (.pth)")
    obj = read_state(path)
    kwargs = obj.get("metadata", {}).get("kwargs") if isinstance(obj, dict) else None
    if not isinstance(kwargs, dict) or "state_dict" not in obj:
        raise CheckpointError(f"{path}: not a DAC weights file (no state_dict and metadata.kwargs)")
    DAC = require("dac.model", "dac", spec).DAC
    known = inspect.signature(DAC).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in known}  # DAC.load drops unknown keys too
    model = DAC(**kwargs)
    load_weights(model, obj["state_dict"], path)
    q = select_q(options, spec, model.n_codebooks)
    cfg = PeerConfig("dac", "descript-audio-codec", model.sample_rate, int(model.hop_length), q,
                     model.codebook_size, canonical(kwargs))
    parts = PeerParts(
        encode=lambda m, wav: m.encoder(wav),  # preprocess() only pads to whole frames, as the tokenizer does
        quantize=lambda m, z, n_q: m.quantizer(z, n_q)[1],  # eval: the first n_q codebooks, [B, n_q, T]
        dequantize=lambda m, codes: m.quantizer.from_codes(codes)[0],
        decode=lambda m, z: m.decode(z),
    )
    return peer_tokenizer(model, parts, cfg, dim=model.latent_dim, checkpoint=checkpoint_identity([path]),
                          package="descript-audio-codec", device=device, pad_to_hop=True)
