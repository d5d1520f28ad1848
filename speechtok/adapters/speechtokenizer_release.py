"""The official SpeechTokenizer release (`config.json` + a `.pt` state dict, read with
`torch.load(weights_only=True)`) as a speechtok tokenizer: weight norm is folded and the EnCodec-style codebooks
move into the shared RVQ."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ..config import to_dict
from ..errors import CheckpointError
from ..layers.seanet import fold_weight_norm_keys
from ..models.speechtokenizer import build_speechtokenizer
from ..tokenizer import Tokenizer


def load_speechtokenizer_release(config_path: str | os.PathLike, ckpt_path: str | os.PathLike,
                                 device: str | torch.device | None = None) -> Tokenizer:
    """The official release (`config.json`, `SpeechTokenizer.pt`) -> Tokenizer in eval mode."""
    from ..fileio import read_json, read_state

    config_path, ckpt_path = Path(config_path), Path(ckpt_path)
    tok = speechtokenizer_from_release(read_json(config_path), read_state(ckpt_path), source=ckpt_path,
                                       name=config_path.parent.name)
    return tok.to(device or "cpu")


def speechtokenizer_from_release(config: dict, state: dict, source: str | os.PathLike,
                                 name: str | None = None, n_q: int | None = None) -> Tokenizer:
    """The release's config (a dict; training-only keys are ignored) and state dict -> Tokenizer (eval).
    `n_q` keeps the first n_q codebooks only (a lower bitrate, as `?q=N` in a spec)."""
    from ..codecs.speechtokenizer import SpeechTokenizerConfig
    from ..config import from_dict

    known = SpeechTokenizerConfig.__dataclass_fields__
    try:
        cfg = from_dict(SpeechTokenizerConfig, {k: v for k, v in config.items() if k in known})
        cfg = cfg if n_q is None else from_dict(SpeechTokenizerConfig, {**to_dict(cfg), "n_q": n_q})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: not a SpeechTokenizer config ({e})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in release_to_native(state).items() if _layer(k) < cfg.n_q}
    tok = build_speechtokenizer(cfg, name=name or "speechtokenizer")
    missing, unexpected = tok.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("embed_avg")]  # re-derived from embed x cluster_size
    if missing or unexpected:
        raise CheckpointError(f"{source}: not a SpeechTokenizer state dict for this config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    tok.source = str(source)
    return tok.eval()


def _layer(key: str) -> int:
    """The RVQ layer a state key belongs to (-1 for keys outside the quantizer's layers)."""
    prefix = "quantizer.vq.layers."
    return int(key[len(prefix):].split(".", 1)[0]) if key.startswith(prefix) else -1


def release_to_native(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official key names and shapes -> ours: weight norm folded, `transform` under `semantic`, codebooks as
    vector-quantize-pytorch holds them ([1, K, D], a boolean `initted`)."""
    out = {}
    for key, value in fold_weight_norm_keys(state).items():
        if key.startswith("transform."):
            out["semantic." + key] = value
        elif key.startswith("quantizer.vq.layers."):
            prefix, name = key.rsplit(".", 1)
            if name == "inited":
                out[f"{prefix}.initted"] = value.reshape(()).bool()
            elif name in ("embed", "embed_avg", "cluster_size"):
                out[key] = value[None]
            else:
                out[key] = value
        else:
            out[key] = value
    return out
