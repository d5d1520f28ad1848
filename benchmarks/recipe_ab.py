#!/usr/bin/env python3
"""Learning per compute: dev PESQ-wb, STOI and F0 RMSE against training minutes for A/B runs of the codec recipe.

    python benchmarks/recipe_ab.py runs/ab-mel runs/ab-complex ... -o benchmarks/results/recipe_ab \
        --baseline speechtok-codec-16k

Each run's `validation.csv` (written by the trainer: step, train_seconds, val/...) gives one curve; the baseline
(the checkpoint the runs start from) is scored on the same dev subset, by the same metrics, as minute 0. Writes
NAME.csv (one row per validation) and NAME.png (three panels), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
from pathlib import Path

COLUMNS = ("val/pesq_wb", "val/stoi", "val/f0_rmse_cents", "val/mel")


def read_curve(run_dir: Path) -> list[dict]:
    path = run_dir / "validation.csv"
    if not path.is_file():
        raise SystemExit(f"{run_dir}: no validation.csv (has the run validated yet?)")
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def score_baseline(model: str, run_dir: Path) -> dict:
    """The starting checkpoint on the run's own dev subset and metrics (its recipe, as the trainer saved it)."""
    import torch
    import yaml

    import speechtok
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.validation import dev_subset, reconstruction

    torch.set_num_threads(1)
    recipe = recipe_from_dict(yaml.safe_load((run_dir / "recipe.yaml").read_text()))
    vcfg = recipe.validation
    result = reconstruction(speechtok.load(model).eval(), dev_subset(vcfg, recipe.data), vcfg.metrics, 0,
                            torch.device("cpu"))
    return {"step": 0.0, "train_seconds": 0.0, **result.metrics}


def plot(curves: dict[str, list[dict]], baseline: dict | None, path: Path, machine: str,
         reference: bool = False) -> None:
    """`reference`: the runs started from scratch, so the baseline is a dashed line to beat, not their minute 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in COLUMNS[:3] if any(k in r for rows in curves.values() for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.8), squeeze=False)
    titles = {"val/pesq_wb": "dev PESQ-wb", "val/stoi": "dev STOI", "val/f0_rmse_cents": "dev F0 RMSE (cents)"}
    for ax, key in zip(axes[0], keys):
        label = titles[key]
        for name, rows in curves.items():
            pts = [(r["train_seconds"] / 60, r[key]) for r in rows if key in r]
            if baseline is not None and key in baseline and not name.startswith("flow") and not reference:
                pts = [(0.0, baseline[key]), *pts]
            ax.plot(*zip(*pts), marker="o", ms=3, label=name)
        if reference and baseline is not None and key in baseline:
            ax.axhline(baseline[key], ls="--", color="gray", label="baseline (bundled)")
        ax.set_xlabel("training minutes (validation excluded)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"codec recipe A/B at equal wall time, 1 thread each, {machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output path without extension")
    p.add_argument("--baseline", help="the checkpoint the codec runs start from, scored as minute 0")
    p.add_argument("--from-scratch", action="store_true",
                   help="the runs did not start from --baseline: draw it as a reference line")
    p.add_argument("--machine", default=f"{platform.processor() or platform.machine()}, 2 cores shared by 2 runs")
    args = p.parse_args()
    curves = {run.name.removeprefix("ab-"): read_curve(run) for run in args.runs}
    baseline = score_baseline(args.baseline, args.runs[0]) if args.baseline else None
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "step", "train_minutes", *COLUMNS])
        rows = [("baseline", baseline)] if baseline else []
        rows += [(name, r) for name, curve in curves.items() for r in curve]
        for name, r in rows:
            w.writerow([name, int(r["step"]), f"{r['train_seconds'] / 60:.1f}",
                        *(f"{r[k]:.4f}" if k in r else "" for k in COLUMNS)])
    print(open(args.output.with_suffix(".csv")).read(), end="")
    plot(curves, baseline, args.output.with_suffix(".png"), args.machine, reference=args.from_scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
