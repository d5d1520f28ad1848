#!/usr/bin/env python3
"""The default codec's training campaign, one session after another: append a run's LS-dev curve to
benchmarks/results/campaign.csv, beside the bundled checkpoint's figure on the same dev subset.

    python benchmarks/campaign.py runs/s34-A --session 34 --machine "2-core CPU, 1 thread" [--bundled-score]

A row per validation of the run: session, training minutes (validation excluded), steps, hours of audio seen
(steps x batch x crop), the LS-dev figures. `--bundled-score` adds the bundled `speechtok-codec-16k` on the same
dev subset as the session's minute-0 row, so each session says what it must beat (+0.05 PESQ-wb to replace it).
Rows of an earlier call for the same session and run are replaced, not repeated.

    python benchmarks/campaign.py --plot benchmarks/results/campaign.png     # the whole campaign in one figure

`--plot` draws every session's LS-dev PESQ-wb and STOI against training minutes summed over the sessions (each
session's bundled minute-0 score as a marker), from the CSV alone.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_ab import read_curve, score_baseline  # noqa: E402

FIELDS = ["session", "run", "machine", "minutes", "steps", "audio_hours", "val/pesq_wb", "val/stoi", "val/mel",
          "train/vq/resets_per_step", "train/vq/perplexity"]


def rows_of(run_dir: Path, session: str, machine: str, bundled: bool) -> list[dict]:
    import yaml

    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    crop_seconds = recipe["data"]["segment_seconds"] * recipe["train"]["batch_size"]
    rows = []
    if bundled:
        base = score_baseline("speechtok-codec-16k", run_dir)
        rows.append({"session": session, "run": "bundled speechtok-codec-16k", "machine": machine, "minutes": 0,
                     "steps": 0, "audio_hours": 0, **{k: base.get(k, "") for k in FIELDS[6:9]}})
    for point in read_curve(run_dir):
        rows.append({"session": session, "run": run_dir.name, "machine": machine,
                     "minutes": round(point["train_seconds"] / 60, 1), "steps": int(point["step"]),
                     "audio_hours": round(point["step"] * crop_seconds / 3600, 2),
                     **{k: round(point[k], 4) for k in FIELDS[6:] if k in point}})
    return rows


def plot(csv_path: Path, out: Path) -> None:
    """Each session's curve against the training minutes of all the sessions before it plus its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    start = 0.0
    for session in dict.fromkeys(r["session"] for r in rows):
        mine = [r for r in rows if r["session"] == session]
        end = start
        for run in dict.fromkeys(r["run"] for r in mine):
            curve = [r for r in mine if r["run"] == run]
            minutes = [start + float(r["minutes"]) for r in curve]
            for ax, key in zip(axes, ("val/pesq_wb", "val/stoi")):
                values = [float(r[key]) for r in curve]
                if run.startswith("bundled"):  # what the session had to beat
                    ax.plot(minutes, values, "k^")
                else:
                    ax.plot(minutes, values, marker=".", label=f"session {session}: {run}")
            end = max(end, *minutes)
        start = end
    for ax, title in zip(axes, ("LS-dev PESQ-wb", "LS-dev STOI")):
        ax.set(title=title, xlabel="training minutes, all sessions (1 CPU thread)")
        ax.grid(alpha=0.3)
    axes[0].axhline(1.8, color="grey", linestyle="--", linewidth=1)  # the first bar (on LS-test)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, nargs="?")
    ap.add_argument("--session")
    ap.add_argument("--machine", help="where it trained, e.g. '2-core CPU, 1 thread'")
    ap.add_argument("--bundled-score", action="store_true", help="score the bundled codec on the same subset")
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/campaign.csv"))
    ap.add_argument("--plot", type=Path, help="draw the CSV's curves into this image instead")
    args = ap.parse_args()
    if args.plot:
        plot(args.output, args.plot)
        return
    if not (args.run_dir and args.session and args.machine):
        ap.error("give RUN_DIR, --session and --machine (or --plot)")
    new = rows_of(args.run_dir, args.session, args.machine, args.bundled_score)
    old = []
    if args.output.is_file():
        with open(args.output, newline="") as f:
            replaced = {(r["session"], r["run"]) for r in new}
            old = [r for r in csv.DictReader(f) if (r["session"], r["run"]) not in replaced]
    with open(args.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(old + new)
    for row in new:
        print("\t".join(str(row.get(k, "")) for k in FIELDS))


if __name__ == "__main__":
    main()
