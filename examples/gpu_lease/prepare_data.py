#!/usr/bin/env python3
"""Pack the training audio a GPU lease carries: a copy of ../shared/data's `train` splits that fits its 64 MiB.

speechocean762's train split is Ogg Opus (4.9 h in 63 MB): a seeded random `--so-fraction` of its utterances
travels. LibriSpeech's train split is FLAC (50 MB for 46 min), so each of its 221 utterances (one per speaker)
travels as one window of `--ls-seconds` at a seeded random offset: every speaker stays, at a third of the bytes.
The layout and manifests mirror shared/data (`<set>/manifest.tsv`, paths relative to the output folder), so
recipes and benchmarks read it with `data.sources=[OUT/librispeech_samples/manifest.tsv,
OUT/speechocean762/manifest.tsv]` or `--data OUT`.

    python examples/gpu_lease/prepare_data.py -o .data      # .data/ is git-ignored; name it in the run's carry
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[2]


def rows(manifest: Path, split: str) -> tuple[list[str], list[dict]]:
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        return list(reader.fieldnames or []), [r for r in reader if r["split"] == split]


def write_manifest(path: Path, fields: list[str], items: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(items)


def copy_files(data: Path, out: Path, name: str, split: str, fraction: float, seed: int) -> None:
    fields, items = rows(data / name / "manifest.tsv", split)
    items = sorted(random.Random(seed).sample(items, round(fraction * len(items))), key=lambda r: r["path"])
    for row in items:
        dst = out / row["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / row["path"], dst)
    (out / name).mkdir(parents=True, exist_ok=True)
    write_manifest(out / name / "manifest.tsv", fields, items)


def copy_windows(data: Path, out: Path, name: str, split: str, seconds: float, seed: int) -> None:
    fields, items = rows(data / name / "manifest.tsv", split)
    rng = random.Random(seed)
    for row in items:
        wav, sr = sf.read(data / row["path"], dtype="int16")
        size = min(len(wav), int(seconds * sr))
        start = rng.randrange(len(wav) - size + 1)
        dst = out / row["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(dst, wav[start:start + size], sr, format="FLAC", subtype="PCM_16")
        row["duration_s"] = f"{size / sr:.3f}"
    write_manifest(out / name / "manifest.tsv", fields, items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("-o", "--out", type=Path, default=REPO / ".data")
    ap.add_argument("--ls-seconds", type=float, default=4.5)
    ap.add_argument("--so-fraction", type=float, default=0.33)
    ap.add_argument("--split", default="train")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    copy_files(args.data, args.out, "speechocean762", args.split, args.so_fraction, args.seed)
    copy_windows(args.data, args.out, "librispeech_samples", args.split, args.ls_seconds, args.seed)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
