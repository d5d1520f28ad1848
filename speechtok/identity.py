"""Which weights a tokenizer runs: its checkpoint's path and one sha256 over the files that decide its behaviour,
so a results row or a codes file says exactly which checkpoint made it (a name or a path alone does not)."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
