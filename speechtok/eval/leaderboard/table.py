"""The leaderboard's model: results files -> groups of entries (one group an evaluation set), the column titles,
and how a cell, the best value of a column and a bitrate are written."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

COLUMN_TITLES = {
    "pesq_wb": "PESQ-wb", "pesq_nb": "PESQ-nb", "stoi": "STOI", "estoi": "ESTOI", "si_sdr": "SI-SDR (dB)",
    "mel": "mel dist.", "f0_rmse_cents": "F0 RMSE (cents)", "vde": "VDE", "abx_within": "ABX within (%)",
    "abx_across": "ABX across (%)", "encode_xrt": "encode ×RT", "decode_xrt": "decode ×RT",
}


_ORDER = ["pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "mel", "f0_rmse_cents", "vde", "abx_within", "abx_across"]


SPEED = ["encode_xrt", "decode_xrt"]


_DIGITS = {"si_sdr": 2, "f0_rmse_cents": 1, "encode_xrt": 0, "decode_xrt": 0}


PERCENT = {"abx_within", "abx_across"}


@dataclass
class Entry:
    """One row of the board: a model at one n_q, from one results file."""

    label: str
    model: str
    n_q: int | None
    status: str
    error: str | None
    kbps: float | None
    effective_kbps: float | None
    values: dict[str, tuple[float, tuple[float, float] | None, int]]  # column -> (mean, ci95, n)
    notes: list[str]
    samples: dict[str, Path]  # utterance id -> wav file
    reference: bool  # a pseudo-model (identity): the ceiling, never "best"
    tokenizer: dict
    usage: float | None = None  # share of each codebook's codes used on this set, mean over the codebooks
    perplexity: float | None = None  # 2 ** entropy of each codebook's codes, mean over the codebooks

    @property
    def frame_rate(self) -> float | None:
        return self.tokenizer.get("frame_rate")

    @property
    def vocab(self) -> int | None:
        """Codes a codebook holds (what an LM's vocabulary grows by per codebook); the largest codebook's where
        they differ (DualCodec's semantic one)."""
        return self.tokenizer.get("codebook_size")

    @property
    def tokens_per_second(self) -> float | None:
        """Codes per second at this n_q (each code once: codebooks that repeat on the grid count at their rate)."""
        sizes = self.tokenizer.get("codebook_sizes")
        if sizes and self.n_q and self.frame_rate:  # codebooks of different sizes share the frame rate
            return self.n_q * self.frame_rate
        if not self.kbps or not self.vocab or self.vocab < 2:
            return None
        return 1000 * self.kbps / math.log2(self.vocab)


@dataclass
class Group:
    name: str
    entries: list[Entry] = field(default_factory=list)
    columns: dict[str, bool] = field(default_factory=dict)  # column -> higher is better
    originals: dict[str, Path] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)  # per results file: path, created, command, protocol, data
    warnings: list[str] = field(default_factory=list)

    @property
    def ordered_columns(self) -> list[str]:
        rest = sorted(c for c in self.columns if c not in _ORDER and c not in SPEED)
        return [c for c in _ORDER if c in self.columns] + rest + [c for c in SPEED if c in self.columns]


@dataclass(frozen=True)
class LeaderboardFiles:
    html: Path
    markdown: Path
    plots: list[Path]
    samples: list[Path]


def collect(results: Sequence[tuple[Path, dict]], labels: dict[str, str] | None = None) -> list[Group]:
    """(path, results dict) pairs -> groups by data set, in the order first seen. `labels` (model as named ->
    text) are shown beside the model, over the labels the results carry."""
    groups: dict[str, Group] = {}
    hashes: dict[str, set] = {}
    for path, res in results:
        data = res["data"]
        group = groups.setdefault(data["name"], Group(data["name"]))
        hashes.setdefault(data["name"], set()).add(data.get("ids_sha1"))
        group.sources.append({"path": str(path), "created": res.get("created"), "command": res.get("command"),
                              "protocol": res.get("protocol", {}), "data": data})
        for column, meta in res.get("columns", {}).items():
            group.columns.setdefault(column, bool(meta.get("higher_is_better", True)))
        samples = res.get("samples") or {}
        sample_dir = (path.parent / samples["dir"]) if samples.get("dir") else None
        if sample_dir is not None and not group.originals:
            group.originals = {uid: sample_dir / rel for uid, rel in samples.get("original", {}).items()}
        for row in res["rows"]:
            if row["status"] == "skipped":  # an n_q the model does not have: a note, not a row
                group.warnings.append(f"{row['model']}: n_q {row['n_q']} skipped ({row.get('error')}).")
                continue
            group.entries.append(_entry(row, data, sample_dir, (labels or {}).get(row["model"], row.get("label"))))
    for name, seen in hashes.items():
        if len(seen) > 1:
            groups[name].warnings.append(
                f"The results for {name} were not all computed on the same utterances (different utterance lists, "
                "or different files skipped): compare their rows with care.")
    return list(groups.values())


def _entry(row: dict, data: dict, sample_dir: Path | None, user_label: str | None = None) -> Entry:
    tok = row.get("tokenizer") or {}
    label = row["model"]
    if "/" in label or "\\" in label:  # a checkpoint path: its name (after `plugin:`), the path in the tooltip
        plugin, sep, _ = label.partition(":")
        name = Path(label.rstrip("/\\")).name
        label = f"{plugin}:{name}" if sep and "/" not in plugin and "\\" not in plugin else name
    if user_label:
        label = f"{label} [{user_label}]"
    values = {}
    for column, s in (row.get("aggregate") or {}).items():
        if s is not None and s.get("mean") is not None:
            ci = tuple(s["ci95"]) if s.get("ci95") else None
            values[column] = (float(s["mean"]), ci, int(s.get("n", 0)))
    bitrate = row.get("bitrate") or {}
    notes = []
    if row.get("failures"):
        notes.append(f"{len(row['failures'])} utterance(s) failed")
    for metric, count in (row.get("metric_failures") or {}).items():
        notes.append(f"{metric} failed on {count}")
    if data.get("skipped"):
        notes.append(f"{len(data['skipped'])} file(s) skipped")
    if tok.get("encode_only"):
        notes.append("encode-only: codes, no audio (quality metrics do not apply)")
    if tok.get("checkpoint"):  # which weights: the full path and hash are in the results and the tooltip
        notes.append(f"weights sha256 {tok['checkpoint']['sha256'][:12]}")
    samples = {}
    if sample_dir is not None:
        samples = {uid: sample_dir / rel for uid, rel in (row.get("samples") or {}).items()}
    return Entry(label, row["model"], row.get("n_q"), row["status"], row.get("error"),
                 bitrate.get("nominal_bps") / 1000 if bitrate.get("nominal_bps") else None,
                 bitrate.get("effective_bps") / 1000 if bitrate.get("effective_bps") else None,
                 values, notes, samples, tok.get("family") in ("identity", "reference"), tok,
                 *_codebook_means(bitrate.get("codebooks") or {}))


def _codebook_means(stats: dict) -> tuple[float | None, float | None]:
    usage, perplexity = stats.get("usage") or [], stats.get("perplexity") or []
    return (sum(usage) / len(usage) if usage else None,
            sum(perplexity) / len(perplexity) if perplexity else None)


def column_title(column: str) -> str:
    return COLUMN_TITLES.get(column, column)


def format_value(column: str, value: float) -> str:
    if column in PERCENT:
        return f"{100 * value:.1f}"
    if column in SPEED and abs(value) < 10:
        return f"{value:.1f}"
    return f"{value:.{_DIGITS.get(column, 3)}f}"


def cell_text(column: str, v: tuple | None) -> str:
    if v is None:
        return "—"
    mean, ci, _ = v
    if ci is None:
        return format_value(column, mean)
    half = (ci[1] - ci[0]) / 2
    return f"{format_value(column, mean)} ± {format_value(column, half)}"


def best_value(group: Group, column: str) -> float | None:
    """The value to mark best: among models (not references), only where there are two to compare and the
    best's 95% interval clears the runner-up's (rows whose intervals overlap are not told apart)."""
    higher = group.columns.get(column, True)
    rows = sorted((e.values[column] for e in group.entries
                   if e.status == "ok" and not e.reference and column in e.values),
                  key=lambda v: v[0], reverse=higher)
    if len(rows) < 2 or rows[0][0] == rows[1][0]:
        return None
    (best, best_ci, _), (_, second_ci, _) = rows[0], rows[1]
    if best_ci is not None and second_ci is not None:
        apart = best_ci[0] > second_ci[1] if higher else best_ci[1] < second_ci[0]
        if not apart:
            return None
    return best


def kbps_text(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def direction_arrow(group: Group, column: str) -> str:
    return "↑" if group.columns.get(column, True) else "↓"


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")[-60:] or "set"


def column_header(group: Group, column: str) -> str:
    """The column's title and whether higher or lower is better in this group."""
    return f"{column_title(column)} {direction_arrow(group, column)}"


def rate_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def percent_text(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"
