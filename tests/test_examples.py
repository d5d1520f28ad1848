"""The examples a user copies from still do what they say."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["path", "speaker", "duration_s", "split", "text"]


def _write_set(root: Path, name: str, rows: list[tuple[str, str, float]], rng) -> None:
    """A shared/data-style set: FLAC files and `<name>/manifest.tsv` with paths relative to `root`."""
    (root / name).mkdir(parents=True)
    with open(root / name / "manifest.tsv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(FIELDS)
        for utt, split, seconds in rows:
            path = f"{name}/audio/{utt}.flac"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / path, (rng.standard_normal(int(seconds * 16000)) * 3000).astype(np.int16), 16000)
            writer.writerow([path, utt[:2], f"{seconds:.3f}", split, "words"])


def _manifest(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_gpu_lease_data_is_a_subset_laid_out_as_shared_data(tmp_path):
    rng = np.random.default_rng(0)
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(data, "librispeech_samples", [("aa1", "train", 6.0), ("bb1", "train", 1.5), ("cc1", "test", 3.0)], rng)
    _write_set(data, "speechocean762", [(f"s{i}x", "train", 2.0) for i in range(4)] + [("t0x", "dev", 2.0)], rng)
    cmd = [sys.executable, ROOT / "examples/gpu_lease/prepare_data.py", "--data", data, "-o", out,
           "--ls-seconds", "2", "--so-fraction", "0.5"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=60).returncode == 0

    ls = _manifest(out / "librispeech_samples/manifest.tsv")
    assert [r["path"].rsplit("/", 1)[1] for r in ls] == ["aa1.flac", "bb1.flac"]  # train only, every utterance
    assert [r["duration_s"] for r in ls] == ["2.000", "1.500"]  # a window, or the whole of a shorter file
    window, whole = sf.read(out / ls[0]["path"], dtype="int16")[0], sf.read(data / ls[0]["path"], dtype="int16")[0]
    starts = np.flatnonzero(whole[: len(whole) - len(window) + 1] == window[0])
    assert len(window) == 32000 and any(np.array_equal(whole[s : s + len(window)], window) for s in starts)

    so = _manifest(out / "speechocean762/manifest.tsv")
    assert len(so) == 2 and all(r["split"] == "train" for r in so)  # half of the 4 train utterances
    assert all((out / r["path"]).read_bytes() == (data / r["path"]).read_bytes() for r in so)  # copied unchanged
