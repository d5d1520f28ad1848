"""Mimi (Kyutai) as a speechtok tokenizer: `speechtok.load("mimi:DIR[?q=N]")`.

DIR is a Hugging Face `MimiModel` directory (`config.json` + `model.safetensors`, as kyutai/mimi), loaded by
`transformers` from local files only. `?q=N` exposes the first N of its 32 codebooks (Moshi uses 8; the first
is the semantic one, so N >= 1 is always valid).
"""

from __future__ import annotations

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    arch_json,
    hf_files,
    parse_spec,
    peer_tokenizer,
    read_json,
    require,
    select_q,
)


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "mimi")
    config = read_json(path / "config.json") if path.is_dir() else {}
    if config.get("model_type") != "mimi":
        raise CheckpointError(f"{path}: not a Hugging Face Mimi directory (config.json with model_type 'mimi')")
    files = hf_files(path)
    transformers = require("transformers", "mimi", spec)
    model = transformers.MimiModel.from_pretrained(path, local_files_only=True)
    mc = model.config
    q = select_q(options, spec, mc.num_quantizers)
    hop = round(mc.sampling_rate / mc.frame_rate)  # 24000 / 12.5 = 1920
    cfg = PeerConfig("mimi", "transformers", mc.sampling_rate, hop, q, mc.codebook_size, arch_json(config))
    parts = PeerParts(
        encode=lambda m, wav: m.encoder(wav).latents,  # SEANet + transformer + downsampling, [B, D, T]
        quantize=lambda m, z, n_q: m.quantizer.encode(z, n_q).transpose(0, 1),  # [K, B, T] -> [B, K, T]
        dequantize=lambda m, codes: m.quantizer.decode(codes),
        decode=lambda m, z: m.decoder(z).audio_values,
    )
    return peer_tokenizer(model, parts, cfg, dim=mc.hidden_size, checkpoint=checkpoint_identity(files),
                          package="transformers", device=device)
