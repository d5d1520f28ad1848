"""`speechtok.eval.evaluate` and `speechtok eval`: every model on the same utterances, the identity ceiling, the
results schema, bad input (skipped and counted; a failing model's row says why) and users' metric plugins."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from speechtok.eval import EvalConfig, check_results, evaluate, load_results, utterances, write_results
from speechtok.eval.leaderboard import collect
from speechtok.eval.metrics import resolve_metrics

from .conftest import speech
from .evalclips import write_clips
from .plugins import fake_distribution, tokenizer_plugin

pytest.importorskip("pesq")
pytest.importorskip("pystoi")

FAST = ("pesq_wb", "stoi", "si_sdr", "mel")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def results(manifest, tiny_ckpt, tmp_path_factory) -> dict:
    """identity, the tiny codec at n_q 2 and 8 (and an n_q it does not have), and a model that does not exist."""
    samples = tmp_path_factory.mktemp("samples")
    cfg = EvalConfig(metrics=FAST + ("speed",), n_qs=(2, 8, 99), samples=1, samples_dir=str(samples),
                     speed_seconds=1.0, speed_repeats=1, progress=False)
    return evaluate(["identity", str(tiny_ckpt), "no-such-model"], utterances(manifest), cfg, data_name="clips")


def test_identity_scores_the_ceiling(results):
    (row,) = [r for r in results["rows"] if r["model"] == "identity"]
    assert row["status"] == "ok" and row["n_q"] is None and row["bitrate"] is None
    agg = row["aggregate"]
    assert agg["pesq_wb"]["mean"] == pytest.approx(4.64, abs=0.01)
    assert agg["stoi"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert agg["mel"]["mean"] == 0.0 and agg["si_sdr"]["mean"] == 100.0
    assert [u["id"] for u in row["utterances"]] == ["clip0", "clip1", "clip2"]


def test_every_model_on_the_same_utterances(results):
    ok = [r for r in results["rows"] if r["status"] == "ok"]
    assert [(Path(r["model"]).name, r["n_q"]) for r in ok] == [("identity", None), ("tiny-codec", 2),
                                                               ("tiny-codec", 8)]
    for r in ok:
        assert [u["id"] for u in r["utterances"]] == ["clip0", "clip1", "clip2"]
        for column in FAST:
            s = r["aggregate"][column]
            assert s["n"] == 3 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    tiny2, tiny8 = ok[1], ok[2]
    assert tiny2["bitrate"]["nominal_bps"] == 50 * 2 * 6 and tiny8["bitrate"]["nominal_bps"] == 50 * 8 * 6
    assert 0 < tiny8["bitrate"]["effective_bps"] <= tiny8["bitrate"]["nominal_bps"]
    assert len(tiny8["bitrate"]["codebooks"]["usage"]) == 8 and len(tiny2["bitrate"]["codebooks"]["usage"]) == 2
    assert tiny2["bitrate"]["codebooks"]["entropy_bits"] == tiny8["bitrate"]["codebooks"]["entropy_bits"][:2]
    assert tiny8["speed"]["encode_xrt"] > 0 and tiny2["speed"]["decode_xrt"] > 0
    assert tiny8["aggregate"]["encode_xrt"]["mean"] == tiny8["speed"]["encode_xrt"]
    assert tiny8["tokenizer"]["dtype"] == "float32" and tiny8["tokenizer"]["device"] == "cpu"


def test_failing_models_say_why_and_impossible_rows_are_skipped(results):
    failed = {(Path(r["model"]).name, r["n_q"]): r for r in results["rows"] if r["status"] == "failed"}
    assert set(failed) == {("no-such-model", None)}
    assert failed[("no-such-model", None)]["error"].startswith("cannot load: no-such-model")
    skipped = {(Path(r["model"]).name, r["n_q"]): r for r in results["rows"] if r["status"] == "skipped"}
    assert set(skipped) == {("tiny-codec", 99)} and skipped[("tiny-codec", 99)]["error"] == "it has 8 codebooks"
    groups = collect([(Path("r.json"), results)])
    assert "n_q 99 skipped (it has 8 codebooks)" in " ".join(groups[0].warnings)
    assert all(e.n_q != 99 for e in groups[0].entries)


def test_limit_spreads_over_speakers():
    from speechtok.commands.evaluate import spread_over_speakers
    from speechtok.eval.sets import Utterance

    utts = [Utterance(id=f"{s}-{k}", path=Path(f"{s}-{k}.wav"), speaker=s) for s in "abc" for k in range(4)]
    picked = spread_over_speakers(utts, 5)
    assert [u.id for u in picked] == ["a-0", "a-1", "b-0", "b-1", "c-0"]  # listed order, 2 + 2 + 1 speakers
    assert len(spread_over_speakers(utts, 50)) == 12


def test_protocol_is_recorded(results):
    p = results["protocol"]
    assert p["resampler"].startswith("soxr ") and "never loudness-normalised" in p["reference"]
    assert p["metrics"]["pesq_wb"]["sample_rate"] == 16000 and p["metrics"]["stoi"]["metric"] == "STOI"
    assert {"torch", "pesq", "pystoi", "soxr"} <= set(p["packages"]) and p["device"] == "cpu"
    assert "chunk" in p["chunking"] and p["sample_rates"] == [16000]


def test_results_json_schema(results, tmp_path):
    path = write_results(results, tmp_path / "r.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = load_results(path)
    assert loaded["schema"] == "speechtok-eval-results" and loaded["schema_version"] == 1
    assert loaded["data"] == {**results["data"]} and loaded["columns"]["mel"] == {"higher_is_better": False}
    assert not Path(loaded["samples"]["dir"]).is_absolute()  # relative to the results file
    assert (path.parent / loaded["samples"]["dir"] / loaded["samples"]["original"]["clip0"]).is_file()
    broken = copy.deepcopy(loaded)
    del broken["rows"][1]["aggregate"]
    with pytest.raises(ValueError, match=r"rows\[1\]: missing key 'aggregate'"):
        check_results(broken)
    broken = copy.deepcopy(loaded)
    broken["rows"][0]["status"] = "failed"
    with pytest.raises(ValueError, match="a failed row says why"):
        check_results(broken)
    with pytest.raises(ValueError, match="not a speechtok eval results file"):
        check_results({**loaded, "schema": "other"})


def test_bad_files_are_skipped_and_counted(manifest, tmp_path):
    root = manifest.parent
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    sf.write(tmp_path / "blip.wav", speech(0.01).numpy(), 16000)  # 10 ms: too short for the codec and for PESQ
    bad = tmp_path / "manifest.tsv"
    bad.write_text("path\tspeaker\n" + f"{root / 'clip0.wav'}\ta\n" + f"{tmp_path / 'missing.wav'}\ta\n"
                   f"{tmp_path / 'broken.wav'}\ta\n{tmp_path / 'blip.wav'}\ta\n")
    from .conftest import make_tiny_codec

    make_tiny_codec().save(tmp_path / "tiny")
    res = evaluate(["identity", str(tmp_path / "tiny")], utterances(bad), EvalConfig(metrics=("pesq_wb", "si_sdr"),
                   progress=False), data_name="bad")
    data = res["data"]
    assert data["listed"] == 4 and data["scored"] == 2
    assert [(s["id"], "no such file" in s["reason"]) for s in data["skipped"]] == [("missing", True), ("broken", False)]
    assert "unreadable" in data["skipped"][1]["reason"]
    identity, tiny = res["rows"]
    assert identity["status"] == "ok" and identity["metric_failures"] == {"pesq_wb": 1}  # PESQ needs 0.25 s
    blip = identity["utterances"][1]
    assert blip["id"] == "blip" and blip.get("pesq_wb") is None and "pesq_wb" in blip["errors"]
    assert blip["si_sdr"] == 100.0 and identity["aggregate"]["pesq_wb"]["n"] == 1
    assert tiny["status"] == "ok" and [f["id"] for f in tiny["failures"]] == ["blip"]
    assert "too short" in tiny["failures"][0]["reason"]


def make_metric_plugin(site: Path) -> Path:
    """A distribution on `site` that registers two metrics under `speechtok.metrics`."""
    source = (
        "import numpy as np\n"
        "def maxdiff(reference, degraded, sample_rate):\n"
        "    n = min(len(reference), len(degraded))\n"
        "    return float(np.abs(reference[:n] - degraded[:n]).max())\n"
        "maxdiff.higher_is_better = False\n"
        "maxdiff.protocol = {'what': 'largest sample difference'}\n"
        "def levels(reference, degraded, sample_rate):\n"
        "    return {'rms': float(np.sqrt(np.mean(degraded ** 2))), 'seconds': len(degraded) / sample_rate}\n"
    )
    return fake_distribution(site, "mymetrics", "[speechtok.metrics]\nmaxdiff = my_metrics:maxdiff\n"
                             "levels = my_metrics:levels\n", {"my_metrics": source})


def test_plugin_metrics_join_the_table(manifest, tmp_path, monkeypatch):
    site = make_metric_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    assert resolve_metrics(None)[-2:] == ("maxdiff", "levels")  # installed plugins are on by default
    res = evaluate(["identity"], utterances(manifest), EvalConfig(metrics=("maxdiff", "levels"), progress=False))
    (row,) = res["rows"]
    assert row["aggregate"]["maxdiff"]["mean"] == 0.0
    assert row["aggregate"]["levels.seconds"]["mean"] == pytest.approx(2.0)
    assert res["columns"]["maxdiff"] == {"higher_is_better": False}
    proto = res["protocol"]["metrics"]["maxdiff"]
    assert proto["what"] == "largest sample difference" and "mymetrics 1.0" in proto["plugin"]
    with pytest.raises(ValueError, match="unknown metric"):
        resolve_metrics(["maxdiff", "utmos"])


def test_cli_eval_in_worker_processes(manifest, tiny_ckpt, tmp_path):
    """As a user runs it: a manifest, a plugin metric computed in a spawned worker, samples beside -o."""
    site = make_metric_plugin(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out" / "results.json"
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "eval", "identity", str(tiny_ckpt), "--data",
                          str(manifest), "--limit", "1", "--n-q", "1,4", "--metrics", "pesq_wb", "maxdiff", "f0",
                          "--f0-tracker", "yin", "--workers", "1", "--samples", "1", "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "| identity | — | — | — | — | — | — | — | — | 4.64" in res.stdout  # the Markdown table on stdout
    loaded = load_results(out)
    assert loaded["command"].startswith("speechtok eval identity")
    assert [(r["n_q"], len(r["utterances"])) for r in loaded["rows"]] == [(None, 1), (1, 1), (4, 1)]
    assert loaded["rows"][1]["aggregate"]["maxdiff"]["mean"] > 0 and loaded["protocol"]["workers"] == 1
    assert loaded["protocol"]["metrics"]["f0"]["backend"] == "yin"  # the tracker chosen, in the worker too
    assert loaded["rows"][0]["aggregate"]["vde"]["mean"] == 0.0  # identity: the same voicing
    samples = out.parent / loaded["samples"]["dir"]
    assert samples == out.parent / "results.samples"
    wavs = sorted(p.relative_to(samples).as_posix() for p in samples.rglob("*.wav"))
    assert len(wavs) == 4 and wavs[0] == "00-identity/clip0.wav" and wavs[3] == "original/clip0.wav"
    assert wavs[1].startswith("01-") and wavs[1].endswith("tiny-codec-q1/clip0.wav")
    assert wavs[2].endswith("-q4/clip0.wav")
    assert sf.info(samples / wavs[1]).samplerate == 16000


def test_cli_eval_exit_status_on_bad_input(tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\nnothere.wav\n")
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "eval", "identity", "--data", str(manifest),
                          "--metrics", "pesq_wb", "--workers", "0", "-o", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "skipping nothere: " in res.stderr
    assert load_results(tmp_path / "r.json")["data"]["skipped"][0]["id"] == "nothere"
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "eval", "identity", "--data", str(manifest),
                          "--metrics", "utmos", "-o", str(tmp_path / "r.json")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1 and "unknown metric(s) utmos" in res.stderr


def test_a_tokenizer_plugin_is_scored_like_any_model(manifest, tiny_ckpt, tmp_path, monkeypatch):
    site = tokenizer_plugin(tmp_path / "site", tiny_ckpt)
    monkeypatch.syspath_prepend(str(site))
    res = evaluate(["mytok"], utterances(manifest)[:1], EvalConfig(metrics=("si_sdr",), n_qs=(1,), progress=False))
    (row,) = res["rows"]
    assert row["status"] == "ok" and row["tokenizer"]["source"] == "mytok" and row["n_q"] == 1
    assert row["bitrate"]["nominal_bps"] == 300.0


def test_opus_reference_rows(manifest, tmp_path):
    """Opus (libsndfile, bundled with soundfile) as a classical reference: its measured bitrate, scored by the same
    protocol, marked as a reference (never "best") on the board."""
    cfg = EvalConfig(metrics=("stoi",), progress=False)
    results = evaluate(["opus", "opus?level=0.9"], utterances(manifest), cfg, data_name="clips")
    low, high = results["rows"]
    assert low["status"] == high["status"] == "ok" and low["tokenizer"]["family"] == "reference"
    assert 5_000 < low["bitrate"]["nominal_bps"] < 15_000 < high["bitrate"]["nominal_bps"] < 60_000
    assert high["aggregate"]["stoi"]["mean"] > low["aggregate"]["stoi"]["mean"] > 0.5
    path = tmp_path / "r.json"
    write_results(results, path)
    entries = collect([(path, load_results(path))])[0].entries
    assert all(e.reference for e in entries) and entries[0].kbps == pytest.approx(low["bitrate"]["nominal_bps"] / 1000)
    with pytest.raises(ValueError, match="outside"):
        from speechtok.eval.candidates import load_candidate

        load_candidate("opus?level=2")


@pytest.mark.skipif(shutil.which("c2enc") is None, reason="Codec 2's tools are not installed (apt-get install codec2)")
def test_codec2_reference_rows(manifest):
    """Codec 2 through c2enc / c2dec, at two modes: its nominal bitrate, a reference row; more bits, better STOI."""
    cfg = EvalConfig(metrics=("stoi",), progress=False)
    high, low = evaluate(["codec2", "codec2?mode=1200"], utterances(manifest), cfg, data_name="clips")["rows"]
    assert high["status"] == low["status"] == "ok" and high["tokenizer"]["family"] == "reference"
    assert (high["bitrate"]["nominal_bps"], low["bitrate"]["nominal_bps"]) == (3200, 1200)
    assert high["aggregate"]["stoi"]["mean"] > low["aggregate"]["stoi"]["mean"] > 0.3


def test_codec2_without_its_tools_is_one_line(monkeypatch):
    from speechtok.eval.candidates import load_candidate

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="apt-get install codec2"):
        load_candidate("codec2")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="choose one of"):
        load_candidate("codec2?mode=9600")
