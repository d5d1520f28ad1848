"""Read a CTranslate2 `model.bin` (binary version 6, as `ctranslate2.specs.ModelSpec` writes it) and convert its
Whisper encoder into `WhisperEncoder` weights, cached as safetensors in the user's cache directory.

The format, little-endian: u32 binary version; string spec name; u32 spec revision; u32 variable count; per
variable: string name, u8 rank, u32 dims[rank], u8 dtype id (float32, int8, int16, int32, float16, bfloat16),
u32 byte count, the bytes; then u32 alias count and (alias, target) string pairs. A string is a u16 length
(counting a trailing NUL), the UTF-8 bytes and the NUL.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from .whisper_files import cache_dir, model_dir, sha256

__all__ = ["read_ct2", "convert_encoder", "encoder_state", "encoder_dims"]

_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16, read through torch
SUPPORTED_VERSIONS = (5, 6)
CONVERTED_VERSION = 1  # of our conversion; bump when the mapping changes so stale caches are rebuilt


def read_ct2(path: str | os.PathLike, prefix: str = "") -> dict[str, torch.Tensor]:
    """Variables of a CT2 `model.bin` whose names start with `prefix` -> name -> tensor (stored dtype)."""
    data = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        text = bytes(data[pos: pos + n - 1]).decode("utf-8")
        pos += n
        return text

    version = take("I")
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path}: CTranslate2 binary version {version}; this reader knows {SUPPORTED_VERSIONS}")
    string(), take("I")  # spec name, revision
    out: dict[str, torch.Tensor] = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        dims = [take("I") for _ in range(rank)]
        dtype_id, nbytes = take("B"), take("I")
        if name.startswith(prefix):
            out[name] = _tensor(data[pos: pos + nbytes], dtype_id, dims)
        pos += nbytes
    return out


def _tensor(raw: memoryview, dtype_id: int, dims: list[int]) -> torch.Tensor:
    if dtype_id >= len(_DTYPES):
        raise ValueError(f"unknown CTranslate2 dtype id {dtype_id}")
    if _DTYPES[dtype_id] is None:
        flat = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16)
    else:
        flat = torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[dtype_id]).copy())
    return flat.reshape(dims) if dims else flat.reshape(())


def encoder_dims(variables: dict[str, torch.Tensor]) -> dict:
    """n_mels, width, layers, heads, positions of the encoder in `variables` (read_ct2(..., "encoder/"))."""
    width, n_mels, _ = variables["encoder/conv1/weight"].shape
    layers = 1 + max(int(m.group(1)) for k in variables if (m := re.match(r"encoder/layer_(\d+)/", k)))
    return {"n_mels": int(n_mels), "width": int(width), "layers": layers,
            "heads": int(variables["encoder/num_heads"]),
            "positions": int(variables["encoder/position_encodings/encodings"].shape[0])}


def encoder_state(variables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CT2 encoder variables -> `WhisperEncoder.state_dict()` (the fused q/k/v projection is split)."""
    v, dims = variables, encoder_dims(variables)
    state = {"conv1.weight": v["encoder/conv1/weight"], "conv1.bias": v["encoder/conv1/bias"],
             "conv2.weight": v["encoder/conv2/weight"], "conv2.bias": v["encoder/conv2/bias"],
             "positions": v["encoder/position_encodings/encodings"],
             "ln_post.weight": v["encoder/layer_norm/gamma"], "ln_post.bias": v["encoder/layer_norm/beta"]}
    for i in range(dims["layers"]):
        src, dst = f"encoder/layer_{i}", f"blocks.{i}"
        att, ffn = f"{src}/self_attention", f"{src}/ffn"
        qkv_w, qkv_b = v[f"{att}/linear_0/weight"], v[f"{att}/linear_0/bias"]  # [3D, D], [3D]: q, k, v stacked
        for j, part in enumerate(("q", "k", "v")):
            state[f"{dst}.attn.{part}.weight"] = qkv_w.chunk(3)[j]
            state[f"{dst}.attn.{part}.bias"] = qkv_b.chunk(3)[j]
        names = {"attn.out": f"{att}/linear_1", "mlp1": f"{ffn}/linear_0", "mlp2": f"{ffn}/linear_1"}
        for ours, theirs in names.items():
            state[f"{dst}.{ours}.weight"], state[f"{dst}.{ours}.bias"] = v[f"{theirs}/weight"], v[f"{theirs}/bias"]
        for ours, theirs in {"attn_ln": f"{att}/layer_norm", "mlp_ln": f"{ffn}/layer_norm"}.items():
            state[f"{dst}.{ours}.weight"], state[f"{dst}.{ours}.bias"] = v[f"{theirs}/gamma"], v[f"{theirs}/beta"]
    return {k: t.contiguous() for k, t in state.items()}


def convert_encoder(name: str = "base") -> tuple[Path, dict]:
    """The converted encoder of Whisper `name` -> (safetensors path in the cache, its dims). Converted once;
    the cache is keyed by the model file's size and modification time and by CONVERTED_VERSION."""
    from safetensors.torch import load_file, save_file

    src = model_dir(name) / "model.bin"
    out = cache_dir() / f"whisper-{name}-encoder.safetensors"
    stamp = {"source": str(src), "size": str(src.stat().st_size), "mtime_ns": str(src.stat().st_mtime_ns),
             "converted_version": str(CONVERTED_VERSION)}
    if out.is_file():
        from safetensors import safe_open

        with safe_open(out, "pt") as f:
            meta = f.metadata() or {}
        if all(meta.get(k) == s for k, s in stamp.items()):
            return out, json.loads(meta["dims"])
    variables = read_ct2(src, "encoder/")
    dims = encoder_dims(variables)
    state = encoder_state(variables)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=stamp | {"dims": json.dumps(dims), "sha256": sha256(src)})
        load_file(tmp)  # readable before it takes the final name
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, dims
