"""Peers on the leaderboard: an adapter is scored like any tokenizer, its rows record which weights they used
(path and content hash), and a user's label (`--label MODEL=TEXT`) reaches the page."""

from __future__ import annotations

import pytest

from speechtok.eval import EvalConfig, evaluate, utterances
from speechtok.eval.leaderboard import collect, markdown

from .evalclips import write_clips
from .test_adapters import _dac


def test_peer_row_records_checkpoint_and_label(tmp_path, tiny_ckpt):
    _model, file = _dac(tmp_path)
    peer = f"dac:{file}"
    cfg = EvalConfig(metrics=("si_sdr",), progress=False, labels={peer: "random weights"})
    res = evaluate([peer, str(tiny_ckpt)], utterances(write_clips(tmp_path / "clips", seconds=1.0)), cfg)
    rows = {r["model"]: r for r in res["rows"]}
    assert rows[peer]["status"] == "ok" and rows[peer]["label"] == "random weights"
    ckpt = rows[peer]["tokenizer"]["checkpoint"]
    assert ckpt["path"] == str(file.resolve()) and len(ckpt["sha256"]) == 64
    own = rows[str(tiny_ckpt)]["tokenizer"]["checkpoint"]  # speechtok's own checkpoints are identified too
    assert own["path"] == str(tiny_ckpt.resolve()) and own["sha256"] != ckpt["sha256"]
    page = markdown(collect([(tmp_path / "r.json", res)]))
    assert "| dac:weights_16khz.pth [random weights] |" in page
    assert f"weights sha256 {ckpt['sha256'][:12]}" in page
    relabelled = markdown(collect([(tmp_path / "r.json", res)], labels={peer: "untrained"}))
    assert "[untrained]" in relabelled and "[random weights]" not in relabelled


def test_label_arguments():
    from speechtok.commands.evaluate import parse_labels

    assert parse_labels(["mimi:/m?q=8=random weights"], ["mimi:/m?q=8"]) == {"mimi:/m?q=8": "random weights"}
    with pytest.raises(ValueError, match="MODEL=TEXT"):
        parse_labels(["no-equals-sign"])
    with pytest.raises(ValueError, match="not one of the models"):
        parse_labels(["other=x"], ["dac:/w.pth"])
