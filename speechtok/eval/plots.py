"""Quality-versus-bitrate plots for the leaderboard (matplotlib, imported when called: the `leaderboard` extra).

One panel per quality column; x is the nominal bitrate in kbit/s (log scale), y the mean with its 95% interval;
each model is one line through its n_q points; pseudo-models without a bitrate (`identity`) are a dashed
horizontal line: the ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Point", "quality_vs_bitrate"]


@dataclass(frozen=True)
class Point:
    model: str  # the line it belongs to
    kbps: float | None  # None: no bitrate (drawn as a horizontal line)
    values: dict[str, tuple[float, tuple[float, float] | None]]  # column -> (mean, 95% interval)


def quality_vs_bitrate(points: Sequence[Point], columns: Sequence[str], titles: dict[str, str], path: str | Path,
                       title: str = "", chance: dict[str, float] | None = None) -> Path:
    """Draw `columns` of `points` against bitrate into `path` (.svg or .png); `chance` draws a dotted line at a
    column's chance level (50% ABX error)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
        from matplotlib.ticker import FixedLocator, NullLocator
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'speechtok[leaderboard]'") from None

    columns = [c for c in columns if any(c in p.values for p in points)]
    if not columns:
        raise ValueError("nothing to plot: no point has any of the columns")
    per_row = min(3, len(columns))
    n_rows = math.ceil(len(columns) / per_row)
    fig = Figure(figsize=(4.2 * per_row, 3.3 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, per_row, squeeze=False).flatten()
    models = list(dict.fromkeys(p.model for p in points))
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    rates = [p.kbps for p in points if p.kbps]
    for ax, column in zip(axes, columns):
        for model in models:
            pts = sorted((p for p in points if p.model == model and column in p.values), key=lambda p: p.kbps or 0)
            if not pts:
                continue
            if pts[0].kbps is None:
                ax.axhline(pts[0].values[column][0], color="0.4", linestyle="--", linewidth=1, label=model)
                continue
            x = [p.kbps for p in pts]
            y = [p.values[column][0] for p in pts]
            err = list(zip(*(_error_bar(*p.values[column]) for p in pts)))  # [2, n]: below, above
            ax.errorbar(x, y, yerr=err, marker="o", markersize=4, capsize=2, color=colours[model], label=model)
        if chance and column in chance:
            ax.axhline(chance[column], color="0.6", linestyle=":", linewidth=1)
            ax.annotate("chance", (0.01, chance[column]), xycoords=("axes fraction", "data"), fontsize=7,
                        color="0.5", va="bottom")
        ax.set_title(titles.get(column, column), fontsize=10)
        ax.set_xlabel("nominal bitrate (kbit/s)", fontsize=8)
        if rates:  # log scale, ticked at the bitrates on the board, written plainly
            ax.set_xscale("log")
            ticks = sorted(set(rates))
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{t:g}" if t >= 10 else f"{t:.2g}" for t in ticks])
            if len(ticks) == 1:
                ax.set_xlim(ticks[0] / 2, ticks[0] * 2)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1 : len(columns)]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _error_bar(mean: float, ci: tuple[float, float] | None) -> tuple[float, float]:
    if ci is None:
        return 0.0, 0.0
    return max(0.0, mean - ci[0]), max(0.0, ci[1] - mean)
