"""The items of a list of sources (directories of audio, manifests), as training, pre-tokenization and k-means
read them: in source order, split-filtered, without the items a manifest says are too short."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from .files import scan
from .manifest import MANIFEST_SUFFIXES, Item, read_manifest


def collect_items(sources: Sequence[str | os.PathLike], root: str | os.PathLike | None = None,
                  splits: Sequence[str] = (), min_duration_s: float = 0.0, skip_missing: bool = False) -> list[Item]:
    """Every item of `sources`; a directory gives all its audio files (sorted), a manifest its rows of `splits`
    (all rows when empty). Items whose known duration is under `min_duration_s` are left out."""
    items: list[Item] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            items += [Item(f) for f in scan(path, AUDIO_EXTENSIONS)]
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            items += read_manifest(path, root, splits, skip_missing)
        elif path.suffix.lower() == ".npy":
            raise ValueError(f"{path}: packed crops are a training dataset on their own (make_dataset, "
                             "PackedCropDataset), not a list of items")
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such manifest or directory")
        else:
            raise ValueError(f"{path}: not a manifest (.tsv, .jsonl) or a directory")
    return [it for it in items if it.duration_s is None or it.duration_s >= min_duration_s]
