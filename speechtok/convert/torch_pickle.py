"""`speechtok convert torch-pickle SRC.pt -o OUT.safetensors --unpickle`: a torch checkpoint that only loads with a
full unpickle (a peer's .pt / .pth / .th / .bin holding more than tensors and plain values) -> one safetensors
file that the peer adapters read in its place (`speechtok.load("dac:OUT.safetensors")`).

The file's (nested) dict is kept: tensors are stored under their key path joined by "/", and every other leaf
(numbers, strings, lists: a DAC checkpoint's `metadata.kwargs`, say) as JSON in the safetensors metadata.
`fileio.read_converted` rebuilds the same dict.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..fileio import REST_KEY, SEP, atomic_path, read_converted  # noqa: F401  (read_converted: its reader)
from . import converter


@converter("torch-pickle", "a torch checkpoint (.pt/.pth/.th/.bin) that needs a full unpickle -> .safetensors "
                           "that the peer adapters load")
def convert_torch_pickle(src: Path, out: Path) -> Path:
    from safetensors.torch import save_file

    obj = torch.load(src, map_location="cpu", weights_only=False)  # trust_pickle was checked by convert()
    if not isinstance(obj, dict):
        raise CheckpointError(f"{src}: holds a {type(obj).__name__}, not a dict of tensors")
    tensors: dict[str, torch.Tensor] = {}
    rest = _split(obj, (), tensors, src)
    out = out if out.suffix == ".safetensors" else out.with_suffix(".safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": "pt", REST_KEY: json.dumps(rest)})
    return out


def _split(obj: dict, prefix: tuple[str, ...], tensors: dict, src: Path) -> dict:
    """Tensors of `obj` into `tensors` (key path -> tensor); returns the rest, JSON-ready."""
    rest = {}
    for key, value in obj.items():
        path = (*prefix, str(key))
        if SEP in str(key):
            raise CheckpointError(f"{src}: key {key!r} contains {SEP!r}; cannot convert")
        if isinstance(value, torch.Tensor):
            tensors[SEP.join(path)] = value.detach().cpu()
        elif isinstance(value, dict):
            rest[str(key)] = _split(value, path, tensors, src)
        else:
            if hasattr(value, "item") and type(value).__module__ == "numpy":  # numpy scalars: plain numbers
                value = value.item()
            try:
                json.dumps(value)
            except TypeError:
                raise CheckpointError(f"{src}: {SEP.join(path)} is a {type(value).__name__}, neither a tensor nor "
                                      "a plain value; cannot convert") from None
            rest[str(key)] = {"__value__": value}
    return rest
