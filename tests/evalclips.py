"""Short evaluation clips for the eval and leaderboard tests: three LS-test speakers (synthetic speech without
../shared/data), 16 kHz WAV, with a manifest."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from .conftest import DATA, reads_test_data, speech


def write_clips(root: Path, seconds: float = 2.0) -> Path:
    """clip0..2.wav (from 1 s into three LS-test utterances of different speakers) + manifest.tsv -> its path."""
    reads_test_data()
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path\tspeaker\tduration_s"]
    if (DATA / "librispeech_samples").is_dir():
        from speechtok.eval.sets import eval_set

        sources = [eval_set("LS-test", DATA)[i] for i in (0, 10, 20)]
        clips = [(u.speaker, sf.read(u.path, dtype="float32")[0][16000 : int((1 + seconds) * 16000)]) for u in sources]
    else:
        clips = [(f"s{i}", speech(seconds).numpy() * (0.5 + 0.2 * i)) for i in range(3)]
    for i, (speaker, wav) in enumerate(clips):
        sf.write(root / f"clip{i}.wav", wav, 16000)
        rows.append(f"clip{i}.wav\t{speaker}\t{seconds}")
    (root / "manifest.tsv").write_text("\n".join(rows) + "\n")
    return root / "manifest.tsv"
