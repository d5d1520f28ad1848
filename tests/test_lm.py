"""LM tokens: one vocabulary for every codebook, and patterns whose inverse gives back the codes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtok import Codes
from speechtok.errors import ArgumentError
from speechtok.lm import PATTERNS, LMTokens, LMVocab, decode_tokens, encode_codes, get_pattern, seconds_of

RNG = np.random.default_rng(0)
MULTI = ["flatten", "delay", "semantic_first", "parallel"]


def random_codes(q: int, t: int, size: int = 16) -> np.ndarray:
    return RNG.integers(0, size, (q, t))


@pytest.mark.parametrize("name", MULTI)
@pytest.mark.parametrize("q, t", [(1, 1), (4, 1), (4, 9), (3, 50)])  # Q < the vocabulary's 4 codebooks too
def test_every_pattern_round_trips(name, q, t):
    vocab = LMVocab(num_codebooks=4, codebook_size=16, extra=("<sem>", "<ac>"))
    codes = random_codes(q, t)
    pattern = get_pattern(name)
    tokens = pattern.encode(codes, vocab)
    assert np.array_equal(pattern.decode(tokens, vocab), codes)
    assert tokens.ids.min() >= 0 and tokens.ids.max() < vocab.size
    frames = pattern.frames(tokens, vocab)  # every position's frame: each frame once per codebook
    if name == "parallel":
        assert frames.tolist() == list(range(t))
    else:
        assert len(frames) == len(tokens.ids)
        assert sorted(frames[frames >= 0].tolist()) == sorted(np.repeat(np.arange(t), q).tolist())


def test_flatten_is_frame_major_with_offsets_per_codebook():
    vocab = LMVocab(2, 10)
    tokens = get_pattern("flatten").encode(np.array([[1, 2], [3, 4]]), vocab)
    o = vocab.offset
    assert tokens.ids.tolist() == [vocab.bos, o + 1, o + 10 + 3, o + 2, o + 10 + 4, vocab.eos]


def test_delay_shifts_codebook_q_by_q_frames_and_pads():
    vocab = LMVocab(3, 10)
    codes = np.array([[1, 2], [3, 4], [5, 6]])
    tokens = get_pattern("delay").encode(codes, vocab)
    grid = tokens.ids[1:-1].reshape(-1, 3).T  # [Q, T + Q - 1]
    assert grid.shape == (3, 4)
    assert grid[0].tolist()[2:] == [vocab.pad, vocab.pad] and grid[2].tolist()[:2] == [vocab.pad, vocab.pad]
    assert vocab.codes(grid[1:2, 2:3], first_codebook=1)[0, 0] == 4  # codebook 1's frame 1 at step 1 + 1
    frames = get_pattern("delay").frames(tokens, vocab)[1:-1].reshape(-1, 3).T
    assert frames[0].tolist() == [0, 1, -1, -1] and frames[2].tolist() == [-1, -1, 0, 1]


def test_semantic_first_delays_only_the_acoustic_codebooks():
    vocab = LMVocab(3, 10)
    codes = random_codes(3, 5, 10)
    pattern = get_pattern("semantic_first", acoustic_delay=2)
    tokens = pattern.encode(codes, vocab)
    grid = tokens.ids[1:-1].reshape(-1, 3).T
    assert np.array_equal(vocab.codes(grid[:1, :5]), codes[:1])  # semantic on time
    assert np.array_equal(vocab.codes(grid[1:, 2:], first_codebook=1), codes[1:])  # acoustic 2 frames late
    assert np.array_equal(pattern.decode(tokens, vocab), codes)


def test_units_keep_their_durations():
    vocab = LMVocab(1, 100)
    codes = np.array([[7, 7, 7, 3, 3, 9, 7, 7]])
    tokens = get_pattern("units").encode(codes, vocab)
    assert (vocab.codes(tokens.ids[None, 1:-1])[0]).tolist() == [7, 3, 9, 7]
    assert tokens.durations.tolist() == [0, 3, 2, 1, 2, 0]
    assert np.array_equal(get_pattern("units").decode(tokens, vocab), codes)
    assert get_pattern("units").frames(tokens, vocab).tolist() == [-1, 0, 3, 5, 6, -1]
    with pytest.raises(ArgumentError, match="one codebook"):
        get_pattern("units").encode(random_codes(2, 4), vocab)


def test_a_batch_of_different_lengths_round_trips_item_by_item():
    lengths = [9, 4, 6]
    codes = Codes(codes=torch.from_numpy(random_codes(12, 9, 64)).reshape(3, 4, 9), lengths=torch.tensor(lengths),
                  sample_rate=16000, hop_length=320, tokenizer={"codebook_size": 64, "name": "x"})
    vocab = LMVocab.for_codes(codes)
    assert (vocab.num_codebooks, vocab.codebook_size, vocab.tokenizer["name"]) == (4, 64, "x")
    for name in MULTI:
        items = encode_codes(codes, name, vocab)
        for i, tokens in enumerate(items):
            back = decode_tokens(tokens, name, vocab)
            assert torch.equal(back, codes.codes[i : i + 1, :, : lengths[i]])


def test_positions_map_to_seconds():
    codes = Codes(codes=torch.zeros(1, 2, 3, dtype=torch.long), lengths=torch.tensor([3]), sample_rate=16000,
                  hop_length=320, offset=40, tokenizer={"codebook_size": 8})
    vocab = LMVocab.for_codes(codes)
    pattern = get_pattern("flatten")
    tokens = pattern.encode(codes.codes[0].numpy(), vocab)
    times = seconds_of(pattern.frames(tokens, vocab), codes)
    assert np.isnan(times[0]) and np.isnan(times[-1])
    assert times[1:-1].tolist() == pytest.approx([0.0025, 0.0025, 0.0225, 0.0225, 0.0425, 0.0425])


def test_vocab_json_round_trips(tmp_path):
    vocab = LMVocab(8, 1024, ("<sem>", "<ac>"), {"name": "speechtok-codec-16k"})
    back = LMVocab.load(vocab.save(tmp_path / "vocab.json"))
    assert back == vocab and back.tokenizer == vocab.tokenizer
    assert back.size == 5 + 8 * 1024 and back.special("<ac>") == 4
    with pytest.raises(ArgumentError, match="no special token"):
        back.special("<nope>")


@pytest.mark.parametrize("name", MULTI)
def test_codebooks_of_different_sizes_get_ranges_of_their_own(name, tmp_path):
    """DualCodec's layout: a large semantic codebook before smaller acoustic ones."""
    vocab = LMVocab(3, 100, codebook_sizes=(100, 20, 20))
    assert vocab.size == vocab.offset + 140 and vocab.starts.tolist() == [vocab.offset + k for k in (0, 100, 120)]
    codes = np.stack([RNG.integers(0, 100, 9), RNG.integers(0, 20, 9), RNG.integers(0, 20, 9)])
    codes[:, 0] = [99, 19, 19]  # each codebook's last code
    pattern = get_pattern(name)
    tokens = pattern.encode(codes, vocab)
    assert np.array_equal(pattern.decode(tokens, vocab), codes) and tokens.ids.max() < vocab.size
    ids = vocab.ids(codes)
    assert vocab.codebook_of(ids).tolist() == [[0] * 9, [1] * 9, [2] * 9]
    assert vocab.codebook_of(np.array([vocab.eos, vocab.offset + 119, vocab.offset + 120])).tolist() == [-1, 1, 2]
    with pytest.raises(ArgumentError, match=r"codebook sizes \[100, 20, 20\]"):
        vocab.ids(np.array([[0], [20], [0]]))  # fits the largest codebook, not its own
    back = LMVocab.load(vocab.save(tmp_path / "vocab.json"))
    assert back == vocab and back.to_dict()["format_version"] == 2 and LMVocab(2, 8).to_dict()["format_version"] == 1
    assert LMVocab(2, 8, codebook_sizes=(8, 8)) == LMVocab(2, 8)  # equal sizes are the plain layout
    with pytest.raises(ArgumentError, match="must give 3 sizes"):
        LMVocab(3, 100, codebook_sizes=(100, 20))


def test_bad_tokens_are_refused():
    vocab = LMVocab(2, 10)
    flatten = get_pattern("flatten")
    tokens = flatten.encode(random_codes(2, 3, 10), vocab)
    with pytest.raises(ArgumentError, match="<bos>"):
        flatten.decode(LMTokens(tokens.ids[1:], 2), vocab)
    swapped = tokens.ids.copy()
    swapped[1], swapped[2] = swapped[2], swapped[1]  # codebook 1's id where codebook 0's belongs
    with pytest.raises(ArgumentError, match="codebooks their positions say"):
        flatten.decode(LMTokens(swapped, 2), vocab)
    with pytest.raises(ArgumentError, match="out of range"):
        flatten.encode(np.array([[10]]), vocab)
    with pytest.raises(ArgumentError, match="unknown LM pattern"):
        get_pattern("zigzag")
    assert set(PATTERNS) == {"flatten", "delay", "semantic_first", "parallel", "units"}


@pytest.mark.parametrize("pattern", ["delay", "units"])
def test_pretokenize_writes_input_ids_that_decode_back(tiny_ckpt, tmp_path, pattern):
    import pyarrow.dataset

    import speechtok
    from speechtok import audio
    from speechtok.pretokenize import pretokenize

    from .conftest import speech

    for k, seconds in enumerate((1.0, 0.6)):
        audio.write(tmp_path / "src" / f"u{k}.wav", speech(seconds), 16000)
    out = tmp_path / "tokens"
    pretokenize(tiny_ckpt, [tmp_path / "src"], out, progress=False, num_workers=0, lm=pattern,
                n_q=1 if pattern == "units" else None)
    vocab = LMVocab.load(out / ".vocab.json")
    tok = speechtok.load(tiny_ckpt)
    assert vocab.codebook_size == tok.codebook_size and vocab.tokenizer["name"] == tok.name
    rows = pyarrow.dataset.dataset(out, format="parquet").to_table().to_pylist()
    assert len(rows) == 2
    for row in rows:
        tokens = LMTokens(np.array(row["input_ids"]), len(row["codes"]),
                          np.array(row["input_durations"]) if pattern == "units" else None)
        assert np.array_equal(get_pattern(pattern).decode(tokens, vocab), np.array(row["codes"]))
    with pytest.raises(Exception, match="lm"):  # a rerun with another pattern is refused
        pretokenize(tiny_ckpt, [tmp_path / "src"], out, progress=False, num_workers=0, lm="flatten",
                    n_q=1 if pattern == "units" else None)


def test_info_of_a_dataset_gives_token_statistics(tiny_ckpt, tmp_path, capsys):
    import json

    from speechtok import audio
    from speechtok.cli import main
    from speechtok.pretokenize import pretokenize

    from .conftest import speech

    for k in range(2):
        audio.write(tmp_path / "src" / f"u{k}.wav", speech(1.0), 16000)
    out = tmp_path / "tokens"
    pretokenize(tiny_ckpt, [tmp_path / "src"], out, progress=False, num_workers=0, lm="flatten", n_q=2)
    assert main(["info", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["utterances"], stats["num_codebooks"], stats["codebook_size"]) == (2, 2, 64)
    assert stats["frames_per_second"] == pytest.approx(50.0)
    assert stats["tokens_per_second"] == pytest.approx((2 * 50 * 2 + 2 * 2) / 2.0)  # + bos and eos a row
    assert stats["vocab_size"] == 3 + 2 * 64 and stats["lm_pattern"] == "flatten"
    import pyarrow.dataset

    codes = np.array([r["codes"] for r in pyarrow.dataset.dataset(out, format="parquet").to_table().to_pylist()])
    for q in range(2):
        counts = np.bincount(codes[:, q].ravel(), minlength=64)
        p = counts[counts > 0] / counts.sum()
        assert stats[f"codebook_{q}"]["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-4)
        assert stats[f"codebook_{q}"]["used"] == pytest.approx((counts > 0).mean(), abs=1e-4)


def test_the_tiny_gpt_example_runs_end_to_end(tiny_ckpt, corpus, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "lm_tiny_gpt.py"
    res = subprocess.run([sys.executable, str(example), str(corpus), "--model", str(tiny_ckpt), "--n-q", "2",
                          "--steps", "10", "--block", "32", "--sample-seconds", "0.5", "-o", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    sample = Codes.load(tmp_path / "run" / "sample.npy")
    assert sample.codes.shape == (1, 2, 25)
    import soundfile as sf

    assert sf.info(tmp_path / "run" / "sample.wav").frames == 25 * 320
