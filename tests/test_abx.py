"""ABX: items from alignments, triplets, DTW with the angular distance, frame timing, features from codes, and
the known properties (identical A and X: 0 error; random features: about 50%; MFCC on real speech: far less)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from speechtok.codes import Codes
from speechtok.eval.abx import (
    AbxItem,
    abx,
    dtw,
    frame_distances,
    items_from_alignments,
    make_triplets,
    read_item_file,
    write_item_file,
)
from speechtok.eval.features import FrameFeatures, codes_to_features, mfcc_features

from .conftest import DATA, NEEDS_DATA, speech

needs_data = pytest.mark.skipif(not (DATA / "librispeech_samples").is_dir(), reason=NEEDS_DATA)

PHONES = ["AA", "B", "D", "IY", "K", "S"]


def synthetic_items(n_files: int = 6, speakers: int = 3, seed: int = 0) -> tuple[list[AbxItem], dict]:
    """Files of 30 phones of 50 ms (10 frames of 5 ms, hop 80 at 16 kHz), phones from a small set."""
    rng = np.random.default_rng(seed)
    items, layout = [], {}
    for f in range(n_files):
        phones = rng.choice(PHONES, size=30)
        layout[f"f{f}"] = phones
        for i, p in enumerate(phones):
            prev = phones[i - 1] if i else "#"
            nxt = phones[i + 1] if i + 1 < len(phones) else "#"
            items.append(AbxItem(f"f{f}", i * 0.05, (i + 1) * 0.05, str(p), str(prev), str(nxt), f"s{f % speakers}"))
    return items, layout


def features_from(layout: dict, frame: dict | None, seed: int = 0, dim: int = 8) -> dict[str, FrameFeatures]:
    """One vector per phone (repeated over its 10 frames), or random frames when `frame` is None."""
    rng = np.random.default_rng(seed)
    out = {}
    for file, phones in layout.items():
        if frame is None:
            feats = rng.standard_normal((10 * len(phones), dim))
        else:
            feats = np.repeat(np.stack([frame[p] for p in phones]), 10, axis=0)
        out[file] = FrameFeatures(feats.astype(np.float32), 16000, 80, 0)
    return out


def test_identical_a_and_x_give_zero_error():
    items, layout = synthetic_items()
    rng = np.random.default_rng(1)
    frame = {p: rng.standard_normal(8) for p in PHONES}
    for mode, context in itertools.product(("within", "across"), ("within", "any")):
        score = abx(features_from(layout, frame), items, mode, context=context)
        assert score.triplets > 0 and score.error == 0.0, (mode, context)


def test_random_features_give_about_half():
    items, layout = synthetic_items(n_files=8)
    for mode in ("within", "across"):
        score = abx(features_from(layout, None, seed=3), items, mode, max_triplets=4000, context="any")
        assert score.triplets == 4000 and score.total_triplets > 4000
        assert abs(score.error - 0.5) < 0.05, (mode, score)


def test_triplets_follow_the_rules():
    items, _ = synthetic_items()
    for mode, context in itertools.product(("within", "across"), ("within", "any")):
        t = make_triplets(items, mode, context=context)
        assert len(t.abx) == t.total > 0
        for a, b, x in t.abx[:: max(1, len(t.abx) // 500)]:
            A, B, X = items[a], items[b], items[x]
            assert a != x and A.phone == X.phone != B.phone
            assert A.speaker == B.speaker and ((A.speaker == X.speaker) == (mode == "within"))
            if context == "within":
                assert (A.prev, A.next) == (B.prev, B.next) == (X.prev, X.next)
    drawn = make_triplets(items, "within", max_triplets=50, seed=7, context="any")
    again = make_triplets(items, "within", max_triplets=50, seed=7, context="any")
    assert len(drawn.abx) == 50 and (drawn.abx == again.abx).all()  # a seed draws the same triplets


def test_dtw_and_angular_distance():
    x = np.random.default_rng(0).standard_normal((5, 4))
    assert dtw(frame_distances(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert dtw(frame_distances(x, np.repeat(x, 3, axis=0))) == pytest.approx(0.0, abs=1e-6)  # time-warped copy
    assert dtw(frame_distances(x, 7.0 * x)) == pytest.approx(0.0, abs=1e-6)  # angular: scale does not matter
    assert frame_distances(x[:1], -x[:1])[0, 0] == pytest.approx(1.0)  # opposite vectors: the farthest
    e1, e2 = np.eye(2)
    # one frame against two: the path has 2 steps, each a right angle (0.5) or 0: mean 0.25
    assert dtw(frame_distances(e1[None], np.stack([e1, e2]))) == pytest.approx(0.25)


def test_items_from_alignments(tmp_path):
    tsv = tmp_path / "alignments.tsv"
    tsv.write_text("utt_id\tstart_s\tend_s\tphone\tword\tmethod\n"
                   "u1\t0.00\t0.10\tSIL\t<sil>\tforced\n"
                   "u1\t0.10\t0.20\tK\tcat\tforced\n"
                   "u1\t0.20\t0.30\tAE\tcat\tforced\n"
                   "u1\t0.30\t0.40\tT\tcat\tforced\n"
                   "u1\t0.40\t0.50\tD\tdog\tuniform\n"
                   "u2\t0.00\t0.10\tAH\ta\tforced\n"
                   "other\t0.00\t0.10\tAH\ta\tforced\n")
    items = items_from_alignments(tsv, {"u1": "spk", "u2": None})
    assert [(i.file, i.phone, i.prev, i.next, i.speaker) for i in items] == [
        ("u1", "K", "SIL", "AE", "spk"), ("u1", "AE", "K", "T", "spk"), ("u1", "T", "AE", "D", "spk"),
        ("u2", "AH", "#", "#", "u2")]  # no SIL target, no uniform row, no file outside the set
    path = write_item_file(items, tmp_path / "x.item")
    assert path.read_text().splitlines()[0] == "#file onset offset #phone prev-phone next-phone speaker"
    assert read_item_file(path) == items


def test_frame_timing_uses_hop_and_offset():
    feats = np.arange(10, dtype=np.float32)[:, None]
    codec = FrameFeatures(feats, 16000, 320, 0)  # frame i: [320 i, 320 i + 320), centre 20 i + 10 ms
    assert codec.segment(0.0, 0.04)[:, 0].tolist() == [0, 1]
    assert codec.segment(0.05, 0.0501)[:, 0].tolist() == [2]  # shorter than a frame: the frame holding it
    hubert = FrameFeatures(feats, 16000, 320, 40)  # frame i reads [320 i, 320 i + 400): centre 320 i + 200
    np.testing.assert_allclose(hubert.frame_centres()[:3], [200 / 16000, 520 / 16000, 840 / 16000])
    assert hubert.segment(0.0, 0.0126)[:, 0].tolist() == [0]
    mfcc = mfcc_features(speech(1.0).numpy(), 16000)  # centred 10 ms frames: frame i centred on sample 160 i
    assert mfcc.features.shape == (101, 39) and mfcc.offset == -80
    assert mfcc.frame_centres()[5] == pytest.approx(0.05)


def test_codes_to_features(tok):
    codes = tok.encode(speech(1.0), 16000)
    full = codes_to_features(tok, codes, layers=3)
    with torch.inference_mode():
        expected = tok.quantizer.decode(codes.codes[:, :3])[0].T
    np.testing.assert_allclose(full.features, expected.numpy(), rtol=1e-6)
    assert (full.sample_rate, full.hop_length, full.offset) == (16000, 320, 0)
    layer1 = codes_to_features(tok, codes, layers=[1])
    np.testing.assert_array_equal(layer1.features, tok.quantizer.codebooks[0][codes.codes[0, 0]].detach().numpy())
    shifted = Codes(codes.codes, codes.lengths, 16000, 320, offset=40)
    assert codes_to_features(tok, shifted, 1).offset == 40  # timing travels with the codes
    with pytest.raises(ValueError, match="layers"):
        codes_to_features(tok, codes, layers=9)


@needs_data
def test_mfcc_is_far_below_chance_on_real_speech():
    from speechtok import audio
    from speechtok.eval.sets import eval_set

    utts = [u for i, u in enumerate(eval_set("LS-test", DATA)) if i % 10 == 0][:8]  # 8 speakers, one utterance each
    feats = {}
    for u in utts:
        wav, sr = audio.read(u.path)
        feats[u.id] = mfcc_features(wav[0, : 6 * sr], sr)  # the first 6 s
    items = [i for i in items_from_alignments(DATA / "librispeech_samples" / "alignments.tsv",
                                              {u.id: u.speaker for u in utts}) if i.offset <= 6.0]
    rng = np.random.default_rng(0)
    noise = {k: FrameFeatures(rng.standard_normal(v.features.shape).astype(np.float32), v.sample_rate,
                              v.hop_length, v.offset) for k, v in feats.items()}
    across = abx(feats, items, "across", max_triplets=3000, context="any")
    assert across.error < 0.35, across
    assert abs(abx(noise, items, "across", max_triplets=3000, context="any").error - 0.5) < 0.06


@needs_data
def test_abx_cli_on_mfcc(tmp_path):
    out = tmp_path / "abx.json"
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "abx", "mfcc", "--data", "LS-test", "--data-root",
                          str(DATA), "--limit", "3", "--context", "any", "--max-triplets", "500", "--mode", "within",
                          "--items", str(tmp_path / "ls.item"), "-o", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ABX within speaker (any context)\t")
    import json

    result = json.loads(out.read_text())
    assert result["scores"]["within"]["triplets"] == 500 and result["scores"]["within"]["error"] < 0.4
    assert len(read_item_file(tmp_path / "ls.item")) == result["items"] > 100
