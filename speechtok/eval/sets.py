"""The evaluation sets DESIGN.md fixes, so that figures compare across time: LS-test, SO-test (and their dev
halves for tuning), read from the `shared/data` manifests. Always report LS and SO separately."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

EVAL_SETS: dict[str, tuple[str, str]] = {
    "LS-test": ("librispeech_samples", "test"),
    "SO-test": ("speechocean762", "test"),
    "LS-dev": ("librispeech_samples", "dev"),
    "SO-dev": ("speechocean762", "dev"),
}


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    speaker: str
    duration_s: float


def eval_set(name: str, data_root: str | Path) -> list[Utterance]:
    """Utterances of an evaluation set, in manifest order. `data_root` is the `shared/data` directory."""
    if name not in EVAL_SETS:
        raise KeyError(f"unknown evaluation set {name!r}; known: {', '.join(EVAL_SETS)}")
    folder, split = EVAL_SETS[name]
    root = Path(data_root)
    manifest = root / folder / "manifest.tsv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: missing (is {root} the shared/data directory?)")
    with open(manifest, newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == split]
    return [Utterance(Path(r["path"]).stem, root / r["path"], r["speaker"], float(r["duration_s"])) for r in rows]
