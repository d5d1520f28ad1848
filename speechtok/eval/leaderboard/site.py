"""`build_leaderboard`: results files -> the site folder (the page, the Markdown, the plots, the sample copies)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..results import load_results
from .markdown import markdown
from .page import html_page, html_samples
from .table import (
    PERCENT,
    SPEED,
    Group,
    LeaderboardFiles,
    collect,
    column_header,
    slugify,
)


def build_leaderboard(paths: Sequence[str | Path], out_dir: str | Path, samples: int = 3,
                      plots: bool = True, plot_format: str = "svg",
                      labels: dict[str, str] | None = None) -> LeaderboardFiles:
    """Read results files, write `out_dir/index.html`, `leaderboard.md`, plots and sample copies. `labels`:
    model as named -> a label shown beside its rows (e.g. "random weights")."""
    from ...fileio import write_text

    out = Path(out_dir)
    results = [(Path(p), load_results(p)) for p in paths]
    groups = collect(results, labels)
    out.mkdir(parents=True, exist_ok=True)
    plot_paths: dict[str, str] = {}
    made_plots: list[Path] = []
    if plots:
        for group in groups:
            made = _plot(group, out / "plots" / f"{slugify(group.name)}.{plot_format}")
            if made is not None:
                made_plots.append(made)
                plot_paths[group.name] = made.relative_to(out).as_posix()
    copied: dict[Path, str] = {}
    samples_html = {}
    for group in groups:
        for src, dst in _sample_copies(group, out, samples):
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                copied[src] = dst.relative_to(out).as_posix()
        samples_html[group.name] = html_samples(group, out, copied, samples)
    md = out / "leaderboard.md"
    write_text(md, markdown(groups, plot_paths))
    page = out / "index.html"
    write_text(page, html_page(groups, plot_paths, samples_html))
    return LeaderboardFiles(page, md, made_plots, [out / rel for rel in copied.values()])


def _sample_copies(group: Group, out: Path, limit: int) -> list[tuple[Path, Path]]:
    base = out / "samples" / slugify(group.name)
    uids = list(group.originals)[:limit]
    pairs = [(group.originals[u], base / "original" / group.originals[u].name) for u in uids]
    for i, en in enumerate(group.entries):
        folder = f"{i:02d}-{slugify(en.label)}" + ("" if en.n_q is None else f"-q{en.n_q}")
        pairs += [(en.samples[u], base / folder / en.samples[u].name) for u in uids if u in en.samples]
    return pairs


def _plot(group: Group, path: Path) -> Path | None:
    from ..plots import Point, quality_vs_bitrate

    columns = [c for c in group.ordered_columns if c not in SPEED and c != "vde"]
    points = []
    for en in group.entries:
        if en.status != "ok" or (en.kbps is None and not en.reference):
            continue
        label = en.label
        values = {c: (v[0] * (100 if c in PERCENT else 1),
                      None if v[1] is None else tuple(x * (100 if c in PERCENT else 1) for x in v[1]))
                  for c, v in en.values.items() if c in columns and math.isfinite(v[0])}
        points.append(Point(label, en.kbps, values))
    if not any(p.kbps for p in points):
        return None
    return quality_vs_bitrate(points, columns, {c: column_header(group, c) for c in columns}, path,
                              title=group.name, chance={c: 50.0 for c in PERCENT})
