"""Token statistics of a pre-tokenized dataset (`speechtok info DATASET_DIR`): what an LM trained on it sees.

Per dataset: utterances, hours, frames/s, tokens/s (all codebooks, or `input_ids` where the dataset has them),
vocabulary size; per codebook: unigram entropy (bits) and the share of its codes used at least once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ArgumentError

META_NAME = ".meta.json"


def is_dataset(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / META_NAME).is_file()


def dataset_stats(directory: str | os.PathLike) -> dict:
    import pyarrow as pa
    import pyarrow.dataset

    directory = Path(directory)
    try:
        meta = json.loads((directory / META_NAME).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArgumentError(f"{directory / META_NAME}: unreadable ({e})") from None
    size = int(meta["codebook_size"])
    columns = ["codes", "duration_s"] + (["input_ids"] if meta.get("lm") else [])
    table = pyarrow.dataset.dataset(directory, format="parquet").to_table(columns=columns)
    if table.num_rows == 0:
        raise ArgumentError(f"{directory}: no rows yet")
    counts, frames = _code_counts(table.column("codes").combine_chunks(), size)
    seconds = float(np.sum(table.column("duration_s").to_numpy()))
    out = {
        "dataset": str(directory), "tokenizer": meta.get("tokenizer", {}).get("name"), "utterances": table.num_rows,
        "hours": round(seconds / 3600, 4), "num_codebooks": len(counts), "codebook_size": size,
        "frames_per_second": round(frames / seconds, 3),
        "tokens_per_second": round(frames * len(counts) / seconds, 3),
        "vocab_size": sum(meta.get("codebook_sizes") or [size] * len(counts)),
    }
    if meta.get("lm"):
        ids = table.column("input_ids").combine_chunks()
        while pa.types.is_list(ids.type):  # [N] a row, or [Q][T] for parallel
            ids = ids.flatten()
        out.update(lm_pattern=meta["lm"]["pattern"], vocab_size=int(meta["lm"]["vocab"]["size"]),
                   tokens_per_second=round(len(ids) / seconds, 3))
    for q, c in enumerate(counts):
        p = c[c > 0] / c.sum()
        out[f"codebook_{q}"] = {"entropy_bits": round(float(-(p * np.log2(p)).sum()), 4),
                                "used": round(float((c > 0).mean()), 4)}
    return out


def _code_counts(codes, size: int) -> tuple[list[np.ndarray], int]:
    """codes: list<list<int>> per row ([Q][T]) -> (per codebook, counts of each code; total frames)."""
    per_codebook = codes.flatten()  # one list per (row, codebook), row-major
    values = per_codebook.flatten().to_numpy().astype(np.int64)
    lengths = np.diff(per_codebook.offsets.to_numpy())
    q = np.diff(codes.offsets.to_numpy())
    if len(set(q.tolist())) != 1:
        raise ArgumentError(f"rows hold different numbers of codebooks: {sorted(set(q.tolist()))}")
    which = np.repeat(np.tile(np.arange(q[0]), len(q)), lengths)
    counts = [np.bincount(values[which == k], minlength=size) for k in range(int(q[0]))]
    return counts, int(lengths.sum() // q[0])
