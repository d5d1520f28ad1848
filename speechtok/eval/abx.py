"""ABX phone discriminability (ZeroSpeech style), within and across speaker, on any frame-level features.

An item is a phone segment: `#file onset offset #phone prev-phone next-phone speaker` (the ZeroSpeech `.item`
format; `items_from_alignments` builds them from a shared/data `alignments.tsv`, leaving out `SIL` targets and
rows aligned `uniform`). A triplet (A, B, X) has A and X of one phone, B of another, all three in the same
context (previous and next phone; `context="any"` drops that condition, as the zrc toolkit's "any" context
mode, for sets too small to hold many phones in matching contexts). Within speaker, A, B and X share a speaker;
across speaker, A and B share one and X is another's. The triplet is an error when X is nearer B than A (half an
error on a tie).

Distance: dynamic time warping over the frames of the two segments, with the angular distance
arccos(cos(u, v)) / pi between frames, normalised by the length of the warping path (as ABXpy does). For codes,
frames are their codebook embeddings (`features.codes_to_features`, which says why).

Score: the mean error of each cell (target phone, other phone, context, speaker(s)), averaged over the cells of
each phone pair, then over the phone pairs. Where there are more triplets than `max_triplets`, that many are
drawn uniformly (with replacement) from all of them with `seed`: the same seed draws the same triplets.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import FrameFeatures

__all__ = ["AbxItem", "AbxScore", "Triplets", "items_from_alignments", "write_item_file", "read_item_file",
           "make_triplets", "frame_distances", "dtw", "abx_error", "abx", "abx_protocol", "ABX_MODES",
           "CONTEXT_MODES", "ITEM_HEADER"]

ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"
ABX_MODES = ("within", "across")
CONTEXT_MODES = ("within", "any")
EDGE = "#"  # context of the first and last phone of a file


@dataclass(frozen=True)
class AbxItem:
    file: str  # utterance id
    onset: float  # seconds
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str


@dataclass(frozen=True)
class Triplets:
    abx: np.ndarray  # [N, 3] item indices (A, B, X)
    cell: np.ndarray  # [N] index into `cells`
    cells: list[tuple]  # (phone A, phone B, context, speaker(s))
    total: int  # triplets there are in all (>= N when sampled)


@dataclass(frozen=True)
class AbxScore:
    mode: str
    context: str
    error: float  # in [0, 1]; NaN when there is no triplet
    triplets: int  # scored
    total_triplets: int  # that exist
    cells: int
    phone_pairs: int
    items: int

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["error"] = None if math.isnan(self.error) else self.error
        return d


# -- items -----------------------------------------------------------------------------------------------------


def items_from_alignments(path: str | Path, speakers: Mapping[str, str | None],
                          skip_phones: Sequence[str] = ("SIL",), skip_methods: Sequence[str] = ("uniform",)
                          ) -> list[AbxItem]:
    """Items of the files in `speakers` (utterance id -> speaker; None: the file is its own speaker) from an
    `alignments.tsv` (`utt_id start_s end_s phone word method`). Targets in `skip_phones` or aligned by a method
    in `skip_methods` are left out; their phones still serve as the context of their neighbours."""
    by_file: dict[str, list[dict]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["utt_id"] in speakers:
                by_file[row["utt_id"]].append(row)
    items = []
    for file in speakers:
        rows = by_file.get(file, [])
        for i, row in enumerate(rows):
            if row["phone"] in skip_phones or row.get("method") in skip_methods:
                continue
            prev = rows[i - 1]["phone"] if i > 0 else EDGE
            nxt = rows[i + 1]["phone"] if i + 1 < len(rows) else EDGE
            speaker = speakers[file] if speakers[file] is not None else file
            items.append(AbxItem(file, float(row["start_s"]), float(row["end_s"]), row["phone"], prev, nxt, speaker))
    return items


def write_item_file(items: Sequence[AbxItem], path: str | Path) -> Path:
    """Write a ZeroSpeech `.item` file (space-separated, header `#file onset offset #phone prev-phone ...`)."""
    lines = [ITEM_HEADER] + [f"{it.file} {it.onset:.4f} {it.offset:.4f} {it.phone} {it.prev} {it.next} {it.speaker}"
                             for it in items]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def read_item_file(path: str | Path) -> list[AbxItem]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split() != ITEM_HEADER.split():
        raise ValueError(f"{path}:1: not an item file (expected the header {ITEM_HEADER!r})")
    items = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 7:
            raise ValueError(f"{path}:{number}: {len(fields)} fields, expected 7")
        items.append(AbxItem(fields[0], float(fields[1]), float(fields[2]), *fields[3:]))
    return items


# -- triplets --------------------------------------------------------------------------------------------------


def make_triplets(items: Sequence[AbxItem], mode: str = "within", max_triplets: int | None = None,
                  seed: int = 0, context: str = "within") -> Triplets:
    """All (A, B, X) triplets of `mode` ("within" or "across" speaker) and `context` ("within": same previous
    and next phone; "any"), or `max_triplets` of them drawn uniformly with `seed` when there are more."""
    if mode not in ABX_MODES:
        raise ValueError(f"ABX mode must be one of {ABX_MODES}, got {mode!r}")
    if context not in CONTEXT_MODES:
        raise ValueError(f"ABX context must be one of {CONTEXT_MODES}, got {context!r}")
    groups: dict[tuple, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for i, it in enumerate(items):  # context -> speaker -> phone -> items
        groups[(it.prev, it.next) if context == "within" else ()][it.speaker][it.phone].append(i)
    cells: list[tuple] = []
    members: list[tuple[list[int], list[int], list[int]]] = []  # (A candidates, B candidates, X candidates)
    for context, by_speaker in groups.items():
        for s1, phones in by_speaker.items():
            x_sources = [(s1, phones)] if mode == "within" else [(s, p) for s, p in by_speaker.items() if s != s1]
            for pa, pb in itertools.permutations(phones, 2):
                for s2, x_phones in x_sources:
                    a, b, x = phones[pa], phones[pb], x_phones.get(pa, [])
                    if (mode == "within" and len(a) < 2) or not x:
                        continue
                    cells.append((pa, pb, context, s1 if mode == "within" else (s1, s2)))
                    members.append((a, b, x))
    sizes = np.array([len(a) * len(b) * (len(x) - 1 if mode == "within" else len(x)) for a, b, x in members],
                     dtype=np.int64)
    total = int(sizes.sum())
    if max_triplets is None or total <= max_triplets:
        abx_rows, cell_ids = [], []
        for c, (a, b, x) in enumerate(members):
            for ia, ib, ix in itertools.product(a, b, x):
                if ia != ix:
                    abx_rows.append((ia, ib, ix))
                    cell_ids.append(c)
        return Triplets(np.array(abx_rows, dtype=np.int64).reshape(-1, 3), np.array(cell_ids, dtype=np.int64),
                        cells, total)
    rng = np.random.default_rng(seed)
    per_cell = rng.multinomial(max_triplets, sizes / total)
    abx_rows, cell_ids = [], []
    for c in np.flatnonzero(per_cell):
        a, b, x = members[c]
        for _ in range(per_cell[c]):
            ia = a[rng.integers(len(a))]
            if mode == "within":  # X uniform among the other items of A's phone
                j = rng.integers(len(x) - 1)
                ix = x[j] if x[j] != ia else x[-1]
            else:
                ix = x[rng.integers(len(x))]
            abx_rows.append((ia, b[rng.integers(len(b))], ix))
            cell_ids.append(c)
    return Triplets(np.array(abx_rows, dtype=np.int64), np.array(cell_ids, dtype=np.int64), cells, total)


# -- distances -------------------------------------------------------------------------------------------------


def frame_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Angular distance arccos(cos) / pi in [0, 1] between the frames of x [n, D] and y [m, D] -> [n, m].
    A zero vector is at 0.5 from everything (cosine 0)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    yn = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    return np.arccos(np.clip(xn @ yn.T, -1.0, 1.0)) / np.pi


def dtw(dist: np.ndarray) -> float:
    """DTW over a frame distance matrix [n, m] with steps (1, 0), (0, 1), (1, 1): the cost of the cheapest path
    divided by its length (so long and short segments compare)."""
    n, m = dist.shape
    d = dist.tolist()
    cost = [[0.0] * m for _ in range(n)]
    length = [[0] * m for _ in range(n)]
    for i in range(n):
        row, prev = cost[i], cost[i - 1] if i else None
        lrow, lprev = length[i], length[i - 1] if i else None
        for j in range(m):
            if i == 0 and j == 0:
                best, steps = 0.0, 0
            else:
                best, steps = math.inf, 0
                if i and prev[j] < best:
                    best, steps = prev[j], lprev[j]
                if j and row[j - 1] < best:
                    best, steps = row[j - 1], lrow[j - 1]
                if i and j and prev[j - 1] <= best:  # the diagonal wins ties: shorter paths
                    best, steps = prev[j - 1], lprev[j - 1]
            row[j] = best + d[i][j]
            lrow[j] = steps + 1
    return cost[-1][-1] / length[-1][-1]


# -- scoring ---------------------------------------------------------------------------------------------------


def abx_error(segments: Sequence[np.ndarray], triplets: Triplets) -> tuple[float, int]:
    """Error of `triplets` over item features `segments[i]` [n_i, D] -> (error, phone pairs averaged over)."""
    if len(triplets.abx) == 0:
        return math.nan, 0
    cache: dict[tuple[int, int], float] = {}

    def distance(i: int, j: int) -> float:
        key = (i, j) if i < j else (j, i)
        if key not in cache:
            cache[key] = dtw(frame_distances(segments[key[0]], segments[key[1]]))
        return cache[key]

    errors = np.empty(len(triplets.abx))
    for k, (a, b, x) in enumerate(triplets.abx.tolist()):
        dax, dbx = distance(a, x), distance(b, x)
        errors[k] = 1.0 if dax > dbx else 0.5 if dax == dbx else 0.0
    cell_sum = np.bincount(triplets.cell, weights=errors, minlength=len(triplets.cells))
    cell_n = np.bincount(triplets.cell, minlength=len(triplets.cells))
    by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in np.flatnonzero(cell_n):
        by_pair[triplets.cells[c][:2]].append(cell_sum[c] / cell_n[c])
    return float(np.mean([np.mean(v) for v in by_pair.values()])), len(by_pair)


def abx(features: Mapping[str, FrameFeatures], items: Sequence[AbxItem], mode: str = "within",
        max_triplets: int | None = None, seed: int = 0, context: str = "within") -> AbxScore:
    """ABX error of `mode` (speaker) and `context` for `items`, with the frame features of each file
    (`features[item.file]`). Items of files without features are left out."""
    kept = [it for it in items if it.file in features]
    segments = [features[it.file].segment(it.onset, it.offset) for it in kept]
    triplets = make_triplets(kept, mode, max_triplets, seed, context)
    error, pairs = abx_error(segments, triplets)
    return AbxScore(mode, context, error, len(triplets.abx), triplets.total, int(len(np.unique(triplets.cell))), pairs,
                    len(kept))


def abx_protocol(max_triplets: int | None, seed: int, context: str = "within") -> dict:
    return {"metric": "ABX error", "items": "phones of the alignments; SIL targets and 'uniform' rows left out",
            "context": "same previous and next phone" if context == "within" else "any",
            "modes": list(ABX_MODES),
            "distance": "DTW, angular frame distance, normalised by path length",
            "codes": "codebook embeddings: sum of the first n_q codebooks' vectors (quantizer.decode)",
            "aggregation": "cell mean -> mean over cells of a phone pair -> mean over phone pairs",
            "max_triplets": max_triplets, "seed": seed}
