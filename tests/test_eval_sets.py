import pytest

from speechtok.eval.sets import EVAL_SETS, eval_set

from .conftest import DATA, NEEDS_DATA

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=NEEDS_DATA)


@needs_data
def test_fixed_evaluation_sets():
    ls, so = eval_set("LS-test", DATA), eval_set("SO-test", DATA)
    assert len(ls) == 100 and len({u.speaker for u in ls}) == 10
    assert len(so) == 400 and len({u.speaker for u in so}) == 20
    assert all(u.path.is_file() and u.path.suffix == ".flac" for u in ls + so)  # lossless references


def test_unknown_set():
    with pytest.raises(KeyError, match="LS-test"):
        eval_set("LS-other", DATA)
    assert set(EVAL_SETS) >= {"LS-test", "SO-test"}


def test_utterances_of_manifests_and_directories(tmp_path):
    from speechtok.eval.sets import alignments_path, utterances

    (tmp_path / "set" / "audio" / "a").mkdir(parents=True)
    (tmp_path / "set" / "audio" / "b").mkdir(parents=True)
    for rel in ("audio/a/x.wav", "audio/b/x.wav", "audio/b/y.flac"):
        (tmp_path / "set" / rel).write_bytes(b"")
    tsv = tmp_path / "set" / "manifest.tsv"  # paths relative to the parent, as in shared/data
    tsv.write_text("path\tspeaker\tduration_s\tsplit\nset/audio/a/x.wav\ts1\t1.5\ttest\n"
                   "set/audio/b/y.flac\ts2\t\tdev\nset/audio/gone.wav\ts2\t2\ttest\n")
    utts = utterances(tsv)
    assert [(u.id, u.speaker, u.duration_s) for u in utts] == [("x", "s1", 1.5), ("y", "s2", None), ("gone", "s2", 2.0)]
    assert utts[0].path == tmp_path / "set" / "audio" / "a" / "x.wav"
    assert not utts[2].path.exists()  # kept: the evaluation skips and counts it
    assert [u.id for u in utterances(tsv, split="test")] == ["x", "gone"]
    jsonl = tmp_path / "set" / "m.jsonl"
    jsonl.write_text('{"path": "audio/a/x.wav", "speaker": "s1"}\n{"path": "audio/b/x.wav", "id": "bx"}\n')
    assert [(u.id, u.speaker) for u in utterances(jsonl)] == [("x", "s1"), ("bx", None)]
    found = utterances(tmp_path / "set" / "audio")  # a directory: ids are relative paths, which cannot collide
    assert [u.id for u in found] == ["a/x", "b/x", "b/y"]
    assert alignments_path(tsv) is None
    (tmp_path / "set" / "alignments.tsv").write_text("utt_id\tstart_s\tend_s\tphone\tword\tmethod\n")
    assert alignments_path(tsv) == tmp_path / "set" / "alignments.tsv"
    with pytest.raises(FileNotFoundError, match="not an evaluation set"):
        utterances(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no 'path' column"):
        (tmp_path / "bad.tsv").write_text("file\n")
        utterances(tmp_path / "bad.tsv")


@needs_data
def test_set_names_resolve_with_their_alignments():
    from speechtok.eval.sets import alignments_path, utterances

    assert [u.id for u in utterances("LS-test", DATA)] == [u.id for u in eval_set("LS-test", DATA)]
    assert alignments_path("SO-test", DATA) == DATA / "speechocean762" / "alignments.tsv"
