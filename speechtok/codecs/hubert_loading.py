"""Load HuBERT checkpoints that users have into `HubertModel`, safely.

- Hugging Face directories: `config.json` + `model.safetensors` (or `pytorch_model.bin`, read with
  `torch.load(weights_only=True)`); `HubertModel`, `HubertForCTC` (`hubert.` prefix) and the like.
- fairseq checkpoints (`hubert_base_ls960.pt`, ...): `torch.load(weights_only=True)` with `FAIRSEQ_SAFE_GLOBALS`
  allowed and nothing else. A checkpoint that needs any other class (an OmegaConf object, say) is refused with
  an error naming it, never unpickled in full.

Pre-training heads (`final_proj`, `label_embs_concat`, CTC heads) are dropped; the weight-normed positional conv is
folded into a plain weight.
"""

from __future__ import annotations

import argparse
import ast
import os
import pickle
from pathlib import Path

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..fileio import read_json
from ..layers import folded_weight
from .hubert import HubertConfig, HubertModel

# Everything a fairseq HuBERT checkpoint may hold besides tensors and containers: its `args` namespace.
FAIRSEQ_SAFE_GLOBALS = [argparse.Namespace]
_DROPPED_PREFIXES = ("final_proj.", "label_embs_concat", "lm_head.", "projector.", "classifier.", "label_embs")


def load_hubert(path: str | os.PathLike) -> HubertModel:
    """A Hugging Face directory or a fairseq `.pt` file -> HubertModel in eval mode (on CPU)."""
    path = Path(path)
    if path.is_dir():
        cfg, state = read_hf_dir(path)
    elif path.is_file():
        cfg, state = read_fairseq(path)
    else:
        raise CheckpointError(f"{path}: no such file or directory")
    model = HubertModel(cfg)
    load_state(model, state, path)
    return model.eval()


# -- Hugging Face ----------------------------------------------------------------------------------------------


def read_hf_dir(directory: Path) -> tuple[HubertConfig, dict[str, Tensor]]:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: missing (a Hugging Face model directory has config.json)")
    cfg = hf_config(read_json(config_path), config_path)
    if (directory / "model.safetensors").is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(directory / "model.safetensors"))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{directory / 'model.safetensors'}: corrupt safetensors file ({e})") from None
    elif (directory / "pytorch_model.bin").is_file():
        state = _torch_load(directory / "pytorch_model.bin", [])
    else:
        raise CheckpointError(f"{directory}: no model.safetensors or pytorch_model.bin")
    return cfg, hf_state(state)


def hf_config(raw: dict, source: object) -> HubertConfig:
    if raw.get("model_type") not in (None, "hubert"):
        raise CheckpointError(f"{source}: model_type {raw.get('model_type')!r} is not hubert")
    for key in ("feat_extract_activation", "hidden_act"):
        if raw.get(key, "gelu") != "gelu":
            raise CheckpointError(f"{source}: {key}={raw[key]!r} is not supported (only gelu)")
    if raw.get("conv_pos_batch_norm"):
        raise CheckpointError(f"{source}: conv_pos_batch_norm=true is not supported")
    names = set(HubertConfig.__dataclass_fields__)
    try:
        return HubertConfig(**{k: v for k, v in raw.items() if k in names})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: invalid HuBERT config ({e})") from None


def hf_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Strip a task model's `hubert.` prefix, drop heads, fold the positional conv's weight norm."""
    if any(k.startswith("hubert.") for k in state):
        state = {k[len("hubert."):]: v for k, v in state.items() if k.startswith("hubert.")}
    state = {k: v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES)}
    prefix = "encoder.pos_conv_embed.conv."
    for g_key, v_key in (("parametrizations.weight.original0", "parametrizations.weight.original1"),
                         ("weight_g", "weight_v")):
        if prefix + g_key in state:
            state[prefix + "weight"] = folded_weight(state.pop(prefix + g_key), state.pop(prefix + v_key))
    return state


# -- fairseq ---------------------------------------------------------------------------------------------------


def read_fairseq(path: Path) -> tuple[HubertConfig, dict[str, Tensor]]:
    ckpt = _torch_load(path, FAIRSEQ_SAFE_GLOBALS)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a fairseq checkpoint (no 'model' entry)")
    model_cfg = None
    if isinstance(ckpt.get("cfg"), dict) and isinstance(ckpt["cfg"].get("model"), dict):
        model_cfg = ckpt["cfg"]["model"]
    elif isinstance(ckpt.get("args"), argparse.Namespace):
        model_cfg = vars(ckpt["args"])
    if model_cfg is None:
        raise CheckpointError(f"{path}: no model configuration (neither cfg['model'] nor args)")
    cfg = fairseq_config(model_cfg, path)
    return cfg, fairseq_state(ckpt["model"], cfg)


def fairseq_config(m: dict, source: object) -> HubertConfig:
    if m.get("activation_fn", "gelu") != "gelu":
        raise CheckpointError(f"{source}: activation_fn={m['activation_fn']!r} is not supported (only gelu)")
    layers = parse_conv_layers(m.get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"),
                               source)
    try:
        return HubertConfig(
            conv_dim=[c for c, _, _ in layers], conv_kernel=[k for _, k, _ in layers],
            conv_stride=[s for _, _, s in layers], conv_bias=bool(m.get("conv_bias", False)),
            feat_extract_norm="layer" if m.get("extractor_mode", "default") == "layer_norm" else "group",
            hidden_size=int(m.get("encoder_embed_dim", 768)), num_hidden_layers=int(m.get("encoder_layers", 12)),
            num_attention_heads=int(m.get("encoder_attention_heads", 12)),
            intermediate_size=int(m.get("encoder_ffn_embed_dim", 3072)),
            num_conv_pos_embeddings=int(m.get("conv_pos", 128)),
            num_conv_pos_embedding_groups=int(m.get("conv_pos_groups", 16)),
            do_stable_layer_norm=bool(m.get("layer_norm_first", False)),
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: invalid HuBERT config ({e})") from None


def parse_conv_layers(text: str, source: object) -> list[tuple[int, int, int]]:
    """fairseq's `conv_feature_layers`, e.g. "[(512,10,5)] + [(512,3,2)] * 4", evaluated on literals, + and *
    only (never `eval`)."""

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported expression {ast.dump(node)[:60]}")

    try:
        layers = value(ast.parse(str(text), mode="eval").body)
        return [(int(c), int(k), int(s)) for c, k, s in layers]
    except (SyntaxError, ValueError, TypeError) as e:
        raise CheckpointError(f"{source}: cannot read conv_feature_layers {text!r} ({e})") from None


def fairseq_state(state: dict[str, Tensor], cfg: HubertConfig) -> dict[str, Tensor]:
    """fairseq key names -> Hugging Face's (which `HubertModel` uses)."""
    out: dict[str, Tensor] = {}
    renames = [("self_attn_layer_norm.", "layer_norm."), ("self_attn.", "attention."),
               ("fc1.", "feed_forward.intermediate_dense."), ("fc2.", "feed_forward.output_dense.")]
    for key, t in state.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        parts = key.split(".")
        if key.startswith("feature_extractor.conv_layers."):
            i, sub = parts[2], parts[3:]
            if sub[0] == "0":  # the conv
                key = f"feature_extractor.conv_layers.{i}.conv.{sub[-1]}"
            elif sub[0] == "2":  # GroupNorm (conv_layers.0.2) or LayerNorm (conv_layers.i.2.1)
                key = f"feature_extractor.conv_layers.{i}.layer_norm.{sub[-1]}"
        elif key.startswith("layer_norm."):
            key = "feature_projection." + key
        elif key.startswith("post_extract_proj."):
            key = "feature_projection.projection." + parts[-1]
        elif key == "mask_emb":
            key = "masked_spec_embed"
        elif key.startswith("encoder.pos_conv.0."):
            key = "encoder.pos_conv_embed.conv." + parts[-1]
        elif key.startswith("encoder.layers."):
            for old, new in renames:
                key = key.replace("." + old, "." + new)
        out[key] = t
    p = "encoder.pos_conv_embed.conv."
    if p + "weight_g" in out:
        out[p + "weight"] = folded_weight(out.pop(p + "weight_g"), out.pop(p + "weight_v"))
    if "feature_projection.projection.weight" not in out and cfg.conv_dim[-1] == cfg.hidden_size:
        # fairseq leaves the projection out when the widths agree: it is the identity
        out["feature_projection.projection.weight"] = torch.eye(cfg.hidden_size)
        out["feature_projection.projection.bias"] = torch.zeros(cfg.hidden_size)
    return out


# -- shared ----------------------------------------------------------------------------------------------------


def _torch_load(path: Path, safe_globals: list) -> object:
    try:
        with torch.serialization.safe_globals(safe_globals):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to unpickle: it needs a class outside the allowed list "
            f"({', '.join(f'{g.__module__}.{g.__qualname__}' for g in safe_globals) or 'none'}); "
            f"torch says: {_weights_only_reason(e)}") from None
    except (RuntimeError, OSError, EOFError) as e:
        raise CheckpointError(f"{path}: unreadable torch file ({' '.join(str(e).split())[:200]})") from None


def _weights_only_reason(e: Exception) -> str:
    """The line of torch's long weights_only message that names the offending global."""
    for line in str(e).splitlines():
        if "GLOBAL" in line or "Unsupported global" in line:
            return line.strip()[:200]
    return " ".join(str(e).split())[:200]


def load_state(model: HubertModel, state: dict[str, Tensor], source: object) -> None:
    expected = model.state_dict()
    if "masked_spec_embed" not in state:  # only used in pre-training; checkpoints without masking omit it
        state = {**state, "masked_spec_embed": expected["masked_spec_embed"]}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not match the config (missing {missing[:3]}"
                              f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                              f"{'...' if len(unexpected) > 3 else ''})")
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not match the config ({str(e).splitlines()[0]}"
                              f"{' '.join(str(e).split()[-12:])})") from None
