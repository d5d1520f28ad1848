"""Which weights a tokenizer runs: its checkpoint's path and one sha256 over the files that decide its behaviour,
so a results row or a codes file says exactly which checkpoint made it (a name or a path alone does not)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

WEIGHT_SUFFIXES = (".safetensors", ".json")  # a speechtok checkpoint directory: config, weights, shard index


def checkpoint_identity(files: list[Path]) -> dict:
    """{path, files, sha256}: the resolved paths and one sha256 over their contents, in the order given."""
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    paths = [str(Path(f).resolve()) for f in files]
    return {"path": paths[0] if len(paths) == 1 else str(Path(paths[0]).parent), "files": paths,
            "sha256": digest.hexdigest()}


def tokenizer_checkpoint(tok) -> dict | None:
    """A loaded tokenizer's checkpoint identity: an adapter's own, or a speechtok checkpoint directory's (by path
    or bundled name); None for a tokenizer built in memory."""
    own = getattr(tok, "checkpoint", None)
    if own:
        return own
    from .registry import bundled

    source = tok.source or ""
    directory = bundled().get(source) or (Path(source) if source and Path(source).is_dir() else None)
    if directory is None:
        return None
    files = sorted(p for p in Path(directory).iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return checkpoint_identity(files)


def weights_hash(tok) -> str | None:
    """16 hex digits of sha256 over the encoder's and quantizer's state as a checkpoint stores it (names, dtypes,
    shapes, bytes): the config hash names the architecture, this the weights that make the codes (a new decoder
    for the same codes keeps it). None for a tokenizer without those modules (an adapter names its checkpoint).
    Cached until a tensor changes (its storage or torch's in-place version counter), as training changes them."""
    encoder, quantizer = getattr(tok, "encoder", None), getattr(tok, "quantizer", None)
    if not isinstance(encoder, torch.nn.Module) or not isinstance(quantizer, torch.nn.Module):
        return None
    key = tuple((t.data_ptr(), t._version) for m in (encoder, quantizer) for t in m.state_dict().values())
    cached = getattr(tok, "_weights_hash", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    derived = getattr(quantizer, "derived_state_suffixes", ())  # recomputed on load: not part of the checkpoint
    for prefix, module in (("encoder.", encoder), ("quantizer.", quantizer)):
        for name, t in sorted(module.state_dict().items()):
            if name.endswith(derived):
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{prefix}{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    tok._weights_hash = (key, h.hexdigest()[:16])
    return tok._weights_hash[1]
