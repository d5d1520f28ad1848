"""Atomic writes (everything is written to a hidden temp name beside the target, then renamed) and safe reads of
the JSON and torch files that checkpoints and official releases hold (no pickled code ever runs)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import CheckpointError


@functools.cache
def _file_mode() -> int:
    """What a plain `open(..., "w")` would give: 0o666 less the umask (mkstemp's files are 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:  # mkstemp inside: a signal right after it must not leave the file (see also remove_stale_temps)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temps(targets: list[Path]) -> int:
    """Delete the temp files `atomic_path` left for these targets (and their `.json` sidecars) when a run was
    killed mid-write; one directory listing per folder. Returns how many."""
    names_by_dir: dict[Path, set[str]] = {}
    for target in targets:
        names_by_dir.setdefault(Path(target).parent, set()).update({Path(target).name, Path(target).name + ".json"})
    removed = 0
    for folder, names in names_by_dir.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            stem = entry.name[1:].rsplit(".", 2)[0] if entry.name.startswith(".") else ""
            if entry.name.endswith(".tmp") and stem in names and entry.is_file():
                os.unlink(entry.path)
                removed += 1
    return removed


def read_state(path: Path) -> dict:
    """A torch checkpoint file -> its (possibly nested) dict, without running pickled code: `weights_only=True`
    for .pt / .pth / .th / .bin, or the `.safetensors` that `speechtok convert torch-pickle` writes."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    if path.suffix == ".safetensors":
        return read_converted(path)  # `speechtok convert torch-pickle`'s output
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "weights_only refused it")
        raise CheckpointError(
            f"{path}: loading it needs a full unpickle, which can run code inside the file ({why}); if you trust "
            f"it, convert it once: speechtok convert torch-pickle {path} -o {path.with_suffix('.safetensors')} "
            "--unpickle, then load the .safetensors file") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({' '.join(str(e).split())[:200]})") from None


def read_json(path: Path) -> dict:
    """A JSON object from a file; CheckpointError (one line) if it is missing, corrupt or not an object."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return obj


# `speechtok convert torch-pickle` (convert/torch_pickle.py) stores a dict's tensors under their key path joined by
# SEP, and every other leaf as JSON in the safetensors metadata under REST_KEY
SEP = "/"
REST_KEY = "speechtok.torch_pickle"


def read_converted(path: Path) -> dict:
    """The dict that `convert_torch_pickle` stored in `path` (no unpickling)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({e})") from None
    out: dict = _rebuild(json.loads(meta[REST_KEY])) if REST_KEY in meta else {}
    for key, value in tensors.items():
        *parents, leaf = key.split(SEP) if REST_KEY in meta else [key]
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _rebuild(rest: dict) -> dict:
    return {k: v["__value__"] if isinstance(v, dict) and set(v) == {"__value__"} else _rebuild(v)
            for k, v in rest.items()}


def checkpoint_identity(files: list[Path]) -> dict:
    """{path, files, sha256}: the resolved paths and one sha256 over their contents, in the order given, so a
    results row or a codes file says exactly which checkpoint made it (a name or a path alone does not)."""
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    paths = [str(Path(f).resolve()) for f in files]
    return {"path": paths[0] if len(paths) == 1 else str(Path(paths[0]).parent), "files": paths,
            "sha256": digest.hexdigest()}
