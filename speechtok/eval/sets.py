"""What an evaluation runs on: the evaluation sets DESIGN.md fixes (LS-test, SO-test, and their dev halves for
tuning), read from a data root laid out as `shared/data` (`speechtok data prepare` builds one from the public
corpora: eval/prepare.py), or any manifest or directory of audio. Always report LS and SO separately.

`utterances(spec, data_root)` takes a set name, a manifest (`.tsv` with a header that has a `path` column, or
`.jsonl` objects with a `path` key; optional `id`, `speaker`, `duration_s`, `split`) or a directory (scanned
recursively). Files that are listed but missing are kept here: the evaluation logs, skips and counts them.
A manifest's `text` column is taken as the reference transcript (for WER), except for the LibriSpeech samples,
whose text is a machine hypothesis (`HYPOTHESIS_TEXT_FOLDERS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from ..corpora.files import scan
from ..corpora.manifest import MANIFEST_SUFFIXES, read_manifest

__all__ = ["EVAL_SETS", "Utterance", "eval_set", "utterances", "read_manifest_utterances", "alignments_path",
           "default_data_root", "user_data_root"]

EVAL_SETS: dict[str, tuple[str, str]] = {
    "LS-test": ("librispeech_samples", "test"),
    "SO-test": ("speechocean762", "test"),
    "LS-dev": ("librispeech_samples", "dev"),
    "SO-dev": ("speechocean762", "dev"),
}
DATA_ENV = "SPEECHTOK_DATA"  # where the shared/data directory is, when it is not ../shared/data
# corpora whose manifest `text` is a machine ASR hypothesis, not a reference: never a WER reference
HYPOTHESIS_TEXT_FOLDERS = ("librispeech_samples",)


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    speaker: str | None = None
    duration_s: float | None = None
    text: str | None = None  # the reference transcript (WER, CER); None where the set's text is no reference


def eval_set(name: str, data_root: str | Path) -> list[Utterance]:
    """Utterances of an evaluation set, in manifest order. `data_root` is the `shared/data` directory."""
    if name not in EVAL_SETS:
        raise KeyError(f"unknown evaluation set {name!r}; known: {', '.join(EVAL_SETS)}")
    from .prepare import hint

    folder, split = EVAL_SETS[name]
    root = Path(data_root)
    manifest = root / folder / "manifest.tsv"
    if not manifest.is_file():
        raise FileNotFoundError(hint(name, root))
    utts = read_manifest_utterances(manifest, split=split, root=root)
    if not utts or not any(u.path.is_file() for u in utts):  # another set of the corpus prepared, not this one
        raise FileNotFoundError(hint(name, root))
    return utts


def utterances(spec: str | os.PathLike, data_root: str | Path | None = None,
               split: str | None = None) -> list[Utterance]:
    """A set name (`LS-test`, ...), a manifest file or a directory of audio -> its utterances, in order.

    `data_root` (the shared/data directory) is only read for set names; None means `default_data_root()`.
    `split` keeps only the manifest rows of that split. Raises FileNotFoundError / ValueError naming the problem.
    """
    text = os.fspath(spec)
    if text in EVAL_SETS:
        if split is not None:
            raise ValueError(f"{text} is one split already; --split does not apply")
        return eval_set(text, data_root if data_root is not None else default_data_root())
    path = Path(text).expanduser()
    if path.is_dir():
        if split is not None:
            raise ValueError(f"{path}: a directory has no split labels")
        files = scan(path, AUDIO_EXTENSIONS)
        return _unique([Utterance(f.relative_to(path).with_suffix("").as_posix(), f) for f in files])
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifest_utterances(path, split=split)
    if not path.exists():
        raise FileNotFoundError(f"{text}: not an evaluation set ({', '.join(EVAL_SETS)}), manifest or directory")
    raise ValueError(f"{path}: not a manifest (.tsv, .jsonl) or a directory")


def read_manifest_utterances(manifest: str | Path, split: str | None = None,
                             root: str | Path | None = None) -> list[Utterance]:
    """Rows of a `.tsv` or `.jsonl` manifest -> utterances (speechtok.manifest resolves the paths: against `root`,
    or the manifest's directory, else its parent). An utterance's id is its `id` column, else its file name
    without the extension (the relative path where two names collide). Missing files are kept, to be counted."""
    items = read_manifest(manifest, root=root, splits=() if split is None else (split,), check_exists=False)
    base = Path(root) if root is not None else None
    hypothesis = Path(manifest).resolve().parent.name in HYPOTHESIS_TEXT_FOLDERS
    utts = [Utterance(it.id or "", it.path, it.speaker, it.duration_s, None if hypothesis else it.text or None)
            for it in items]
    return _unique(utts, base or (Path(manifest).parent if not utts else _common_parent(utts)))


def _common_parent(utts: list[Utterance]) -> Path:
    return Path(os.path.commonpath([u.path.parent for u in utts]))


def alignments_path(spec: str | os.PathLike, data_root: str | Path | None = None) -> Path | None:
    """The phone alignments (`alignments.tsv`, see shared/data/README.md) that go with `spec`: the set's own for a
    set name, an `alignments.tsv` beside a manifest; None where there is none."""
    text = os.fspath(spec)
    if text in EVAL_SETS:
        root = Path(data_root) if data_root is not None else default_data_root()
        path = root / EVAL_SETS[text][0] / "alignments.tsv"
    else:
        path = Path(text).expanduser().parent / "alignments.tsv"
        if Path(text).is_dir():
            path = Path(text) / "alignments.tsv"
    return path if path.is_file() else None


def default_data_root() -> Path:
    """The data root: $SPEECHTOK_DATA, else the first of ./shared/data, ../shared/data, the one beside this source
    checkout and the user's (`user_data_root()`, where `speechtok data prepare` writes) that exists (the user's
    where none does)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    here = Path.cwd()
    candidates = [here / "shared" / "data", here.parent / "shared" / "data",
                  Path(__file__).resolve().parents[3] / "shared" / "data", user_data_root()]
    return next((c for c in candidates if c.is_dir()), candidates[-1])


def user_data_root() -> Path:
    """Where prepared sets go by default: $XDG_DATA_HOME/speechtok (~/.local/share/speechtok)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "speechtok"


def _unique(utts: list[Utterance], base: Path | None = None) -> list[Utterance]:
    """Fill empty ids with the file stem; where stems collide, use the path (relative to `base`) instead."""
    stems: dict[str, int] = {}
    for u in utts:
        stems[u.id or u.path.stem] = stems.get(u.id or u.path.stem, 0) + 1
    out = []
    for u in utts:
        uid = u.id or u.path.stem
        if stems[uid] > 1 and not u.id:
            try:
                uid = u.path.relative_to(base).with_suffix("").as_posix() if base else u.path.with_suffix("").as_posix()
            except ValueError:
                uid = u.path.with_suffix("").as_posix()
        out.append(Utterance(uid, u.path, u.speaker, u.duration_s, u.text))
    seen: set[str] = set()
    for u in out:
        if u.id in seen:
            raise ValueError(f"utterance id {u.id!r} appears twice")
        seen.add(u.id)
    return out
