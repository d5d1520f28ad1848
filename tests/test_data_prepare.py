"""`speechtok data prepare`: an evaluation set built from a corpus laid out like the public one (made here), every
file checked against its checksum, resampled to 16 kHz; `eval --data SET` without it says what to get."""

import csv
import logging
import tarfile

import numpy as np
import pytest
import soundfile as sf

from speechtok.audio import resample
from speechtok.cli import main
from speechtok.eval.prepare import DEFINITION_COLUMNS, PrepareError, definition, prepare, samples_sha256
from speechtok.eval.sets import alignments_path, eval_set

from .conftest import DATA, NEEDS_DATA

UTTS = [("1688", "142285", "0000", 16000), ("1688", "142285", "0001", 16000), ("2609", "156975", "0003", 8000)]


def _pcm(seed: int, n: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.int16)


@pytest.fixture()
def corpus(tmp_path):
    """LibriSpeech's layout (`LibriSpeech/test-other/<spk>/<chapter>/<id>.flac`, a .trans.txt beside), one file at
    8 kHz; and a set definition of those files (the 8 kHz one's checksum is of its 16 kHz resampling)."""
    rows = []
    for i, (spk, chap, idx, rate) in enumerate(UTTS):
        uid = f"{spk}-{chap}-{idx}"
        folder = tmp_path / "LibriSpeech" / "test-other" / spk / chap
        folder.mkdir(parents=True, exist_ok=True)
        pcm = _pcm(i, rate // 2)
        sf.write(folder / f"{uid}.flac", pcm, rate, subtype="PCM_16")
        (folder / f"{spk}-{chap}.trans.txt").write_text(f"{uid} SOME WORDS\n")
        at16 = pcm if rate == 16000 else np.round(
            resample(pcm.astype(np.float32) / 32768, rate, 16000) * 32768).clip(-32768, 32767).astype(np.int16)
        rows.append({"id": uid, "speaker": spk, "split": "test",
                     "source": f"LibriSpeech/test-other/{spk}/{chap}/{uid}.flac",
                     "path": f"librispeech_samples/audio/test-other/{spk}/{uid}.flac", "duration_s": "0.500",
                     "sha256": samples_sha256(at16), "text": "some words"})
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "LS-test.alignments.tsv").write_text("utt_id\tstart_s\tend_s\tphone\tword\tmethod\n"
                                                "1688-142285-0000\t0.00\t0.25\tSIL\t<sil>\tforced\n")
    with open(defs / "LS-test.tsv", "w", newline="") as f:
        writer = csv.DictWriter(f, DEFINITION_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path / "LibriSpeech", defs, rows


def _check_prepared(root, rows):
    utts = eval_set("LS-test", root)
    assert [u.id for u in utts] == [r["id"] for r in rows] and [u.speaker for u in utts] == ["1688", "1688", "2609"]
    for u, r in zip(utts, rows):
        pcm, rate = sf.read(u.path, dtype="int16")
        assert rate == 16000 and samples_sha256(pcm) == r["sha256"]
    assert (root / "librispeech_samples" / "LICENSE-librispeech.txt").is_file()


def test_prepare_from_a_directory(corpus, tmp_path):
    source, defs, rows = corpus
    root = tmp_path / "root"
    prepare("LS-test", source, root, definitions=defs)
    _check_prepared(root, rows)
    assert sf.info(root / rows[2]["path"]).frames == 8000  # 0.5 s at 8 kHz, resampled: 0.5 s at 16 kHz


def test_prepare_from_a_tarball_keeps_other_rows(corpus, tmp_path):
    source, defs, rows = corpus
    archive = tmp_path / "test-other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="LibriSpeech")
    root = tmp_path / "root"
    manifest = root / "librispeech_samples" / "manifest.tsv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("path\tspeaker\tduration_s\tsplit\ttext\nother/x.flac\t9\t1.000\tdev\tkept\n")
    (root / "librispeech_samples" / "alignments.tsv").write_text(
        "utt_id\tstart_s\tend_s\tphone\tword\tmethod\nx\t0.00\t0.10\tAH\ta\tforced\n"
        "1688-142285-0000\t0.00\t0.30\tAA\told\tforced\n")
    prepare("LS-test", archive, root, definitions=defs)
    _check_prepared(root, rows)
    assert "other/x.flac\t9\t1.000\tdev\tkept" in manifest.read_text()  # another set's row stays
    assert (root / "librispeech_samples" / "alignments.tsv").read_text().splitlines()[1:] == [
        "x\t0.00\t0.10\tAH\ta\tforced", "1688-142285-0000\t0.00\t0.25\tSIL\t<sil>\tforced"]  # replaced, kept


def test_a_changed_or_missing_file_writes_nothing(corpus, tmp_path):
    source, defs, rows = corpus
    changed = source / "test-other" / "1688" / "142285" / "1688-142285-0001.flac"
    sf.write(changed, _pcm(99, 8000), 16000, subtype="PCM_16")
    (source / "test-other" / "2609" / "156975" / "2609-156975-0003.flac").unlink()
    root = tmp_path / "root"
    with pytest.raises(PrepareError) as e:
        prepare("LS-test", source, root, definitions=defs)
    message = str(e.value)
    assert "2 of 3 files" in message and "1688-142285-0001.flac: its samples differ" in message
    assert "2609-156975-0003.flac missing" in message and "\n" not in message
    assert not (root / "librispeech_samples").exists()


def test_eval_without_the_set_says_what_to_get(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SPEECHTOK_DATA", str(tmp_path / "empty"))
    assert main(["eval", "identity", "--data", "LS-test", "-o", str(tmp_path / "r.json")]) == 1
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1 and "LibriSpeech test-other" in lines[0]
    assert "speechtok data prepare LS-test --from PATH" in lines[0]
    assert not (tmp_path / "r.json").exists()


def test_shipped_definitions():
    """The sets of the model cards: LS-test 10 speakers x 10, SO-test 20 x 20, their dev sets; unique ids."""
    sizes = {"LS-test": (100, 10), "LS-dev": (30, 30), "SO-test": (400, 20), "SO-dev": (240, 12)}
    for name, (utts, speakers) in sizes.items():
        rows = definition(name)
        assert (len(rows), len({r["speaker"] for r in rows})) == (utts, speakers), name
        assert len({r["id"] for r in rows}) == utts and all(len(r["sha256"]) == 64 for r in rows)


@pytest.mark.skipif(not (DATA / "librispeech_samples").is_dir(), reason=NEEDS_DATA)
def test_prepare_the_real_ls_test(tmp_path):
    """The shipped checksums match the real files (here the shared copy, byte for byte LibriSpeech's)."""
    root = tmp_path / "root"
    prepare("LS-test", DATA / "librispeech_samples" / "audio" / "test-other", root)
    assert len(eval_set("LS-test", root)) == 100
    assert alignments_path("LS-test", root) == root / "librispeech_samples" / "alignments.tsv"
