"""Bad input, command by command: each case gets a non-zero exit (or a speechtok exception), one line that names
the file and the problem, and leaves what was already there as it was (no clobbered input, no stray temp file).

The CLI runs in-process (`speechtok.cli.main`; its log lines are read from caplog) but for one subprocess that
checks the real stderr."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

import speechtok
from speechtok import Codes, audio
from speechtok.cli import main
from speechtok.errors import ArgumentError, AudioError, CheckpointError, CodesError, SpeechtokError
from speechtok.pretokenize import FAILURES_NAME, MissingInputsError, pretokenize

from .conftest import speech

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread

SR = 16000


# -- helpers -----------------------------------------------------------------------------------------------------


def cli(caplog, *args: object) -> tuple[int, list[str]]:
    """(exit code, the messages logged at ERROR) of one in-process `speechtok ARGS...`."""
    caplog.clear()
    code = main([str(a) for a in args])
    return code, [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def one_line(errors: list[str], *words: object) -> str:
    """The last error: a single line that holds every one of `words`."""
    assert errors, "nothing was logged"
    last = errors[-1]
    assert "\n" not in last and "Traceback" not in last, last
    for word in words:
        assert str(word) in last, f"{word!r} not in {last!r}"
    return last


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too: temp files start with '.') -> its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def wav_file(path: Path, seconds: float = 1.0, gain: float = 1.0, subtype: str | None = None) -> Path:
    sf.write(path, gain * speech(seconds).numpy(), SR, subtype=subtype)
    return path


def truncated_wav(path: Path) -> Path:
    """A 16-bit WAV whose header says 4 s and that holds 2 s: a cut download."""
    sf.write(path, speech(4.0).numpy(), SR, subtype="PCM_16")
    data = path.read_bytes()
    start = data.index(b"data") + 8
    path.write_bytes(data[: start + 2 * SR * 2])
    return path


def truncated_aiff(path: Path) -> Path:
    sf.write(path, speech(4.0).numpy(), SR, subtype="PCM_16", format="AIFF")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


class RunsCode:
    """Pickles as a call of exec that creates `marker`: what a malicious checkpoint or codes file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def evil_pt(path: Path, marker: Path, codes_file: bool = True) -> Path:
    payload = {"codes": RunsCode(marker), "meta": "{}"} if codes_file else {"model": RunsCode(marker)}
    torch.save(payload, path)
    return path


@pytest.fixture()
def wav(tmp_path) -> Path:
    return wav_file(tmp_path / "a.wav")


@pytest.fixture()
def codes_npy(tmp_path, tok, wav) -> Path:
    return tok.encode_file(wav).save(tmp_path / "c.npy")


@pytest.fixture()
def a_file(tmp_path) -> Path:
    """A regular file where a directory would have to be: mkdir under it fails, for root too."""
    path = tmp_path / "somefile.txt"
    path.write_text("not a directory\n")
    return path


def nan_ckpt(tiny_ckpt: Path, where: Path) -> Path:
    ckpt = Path(shutil.copytree(tiny_ckpt, where))
    state = load_file(ckpt / "model.safetensors")
    key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[key].view(-1)[0] = float("nan")
    save_file(state, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    return ckpt


def corrupt_ckpt(tiny_ckpt: Path, where: Path) -> Path:
    ckpt = Path(shutil.copytree(tiny_ckpt, where))
    (ckpt / "model.safetensors").write_bytes(b"\x93garbage, not a safetensors header" * 10)
    return ckpt


def peer_dir(root: Path, marker: Path) -> Path:
    """A SpeechTokenizer release directory whose state dict is a pickle that would run code."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"n_q": 8, "strides": [8, 5, 4, 2]}))
    evil_pt(root / "SpeechTokenizer.pt", marker, codes_file=False)
    return root


# -- encode ------------------------------------------------------------------------------------------------------


def test_encode_onto_its_own_input_is_refused_in_one_stderr_line(tiny_ckpt, wav, tmp_path):
    before = snapshot(tmp_path)
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "encode", str(wav), "-o", str(wav), "--model",
                          str(tiny_ckpt)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "a.wav" in res.stderr and "is the input" in res.stderr, res.stderr
    assert snapshot(tmp_path) == before  # no codes over the audio, no a.wav.json


def test_encode_onto_a_hard_link_of_its_input_is_refused(tiny_ckpt, wav, tmp_path, caplog):
    alias = tmp_path / "alias.npy"
    os.link(wav, alias)
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", wav, "-o", alias, "--model", tiny_ckpt)
    assert code == 1
    one_line(errors, alias, "is the input")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["other.wav", "other.flac"])
def test_encode_refuses_an_audio_name_for_codes(tiny_ckpt, wav, tmp_path, caplog, name):
    other = wav_file(tmp_path / name, 0.5)
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", wav, "-o", other, "--model", tiny_ckpt)
    assert code == 1
    one_line(errors, other, ".npy")
    assert snapshot(tmp_path) == before


def test_encode_output_with_a_trailing_slash_is_a_directory(tiny_ckpt, wav, tmp_path, caplog):
    code, _ = cli(caplog, "encode", wav, "-o", f"{tmp_path / 'newdir'}/", "--model", tiny_ckpt)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "newdir").iterdir()) == ["a.npy", "a.npy.json"]
    assert Codes.load(tmp_path / "newdir" / "a.npy").codes.shape == (1, 8, 50)


@pytest.mark.parametrize("under", ["sub/x.npy", "sub/"])
def test_encode_output_under_a_regular_file(tiny_ckpt, wav, tmp_path, a_file, caplog, under):
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", wav, "-o", f"{a_file}/{under}", "--model", tiny_ckpt)
    assert code == 1
    one_line(errors, a_file, "cannot create")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("make", [truncated_wav, truncated_aiff], ids=["wav", "aiff"])
def test_encode_truncated_file_is_an_error(tiny_ckpt, tmp_path, caplog, make):
    bad = make(tmp_path / f"cut.{make.__name__.split('_')[1]}")
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", bad, "-o", tmp_path / "cut.npy", "--model", tiny_ckpt)
    assert code == 1
    one_line(errors, bad, "truncated", "4.00 s", "2.00 s", "--allow-truncated")
    assert snapshot(tmp_path) == before


def test_encode_allow_truncated_encodes_what_is_there(tiny_ckpt, tmp_path, caplog):
    bad = truncated_wav(tmp_path / "cut.wav")
    code, errors = cli(caplog, "encode", bad, "-o", tmp_path / "cut.npy", "--model", tiny_ckpt, "--allow-truncated")
    assert code == 0 and not errors
    assert Codes.load(tmp_path / "cut.npy").codes.shape == (1, 8, 100)  # the 2 s present, at 50 frames/s
    assert any("truncated" in w and "cut.wav" in w for w in warnings_of(caplog))


def test_encode_batch_logs_bad_files_and_does_the_rest(tiny_ckpt, tmp_path, caplog):
    src = tmp_path / "in"
    src.mkdir()
    wav_file(src / "good.wav")
    truncated_wav(src / "cut.wav")
    evil_pt(src / "fake.flac", tmp_path / "never")  # not audio at all
    code, errors = cli(caplog, "encode", src, "-o", tmp_path / "out", "--model", tiny_ckpt)
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.npy", "good.npy.json"]
    assert any("cut.wav" in e and "truncated" in e for e in errors)
    assert any("fake.flac" in e and "unreadable" in e for e in errors)
    assert all("\n" not in e for e in errors) and errors[-1] == "2 of 3 files failed"
    assert not (tmp_path / "never").exists()


def test_encode_n_q_zero(tiny_ckpt, wav, tmp_path, caplog):
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", wav, "-o", tmp_path / "c.npy", "--model", tiny_ckpt, "--n-q", 0)
    assert code == 1
    one_line(errors, "n_q=0", "1..8")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("make, words", [(nan_ckpt, ("model.safetensors", "tensor", "NaN")),
                                         (corrupt_ckpt, ("model.safetensors", "corrupt"))], ids=["nan", "corrupt"])
def test_encode_with_a_bad_checkpoint(tiny_ckpt, wav, tmp_path, caplog, make, words):
    ckpt = make(tiny_ckpt, tmp_path / "ckpt")
    code, errors = cli(caplog, "encode", wav, "-o", tmp_path / "c.npy", "--model", ckpt)
    assert code == 1
    one_line(errors, ckpt, *words)
    assert not (tmp_path / "c.npy").exists() and not list(tmp_path.glob(".*.tmp"))


def test_encode_loud_float_audio_warns_once(tiny_ckpt, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(audio, "_loud_warned", False)
    loud = [wav_file(tmp_path / f"loud{k}.wav", 0.5, gain=40.0, subtype="FLOAT") for k in range(2)]
    code, errors = cli(caplog, "encode", *loud, "-o", tmp_path / "out", "--model", tiny_ckpt)
    assert code == 0 and not errors  # encoded: a warning, not a failure
    said = [w for w in warnings_of(caplog) if "full scale" in w]
    assert len(said) == 1 and "loud0.wav" in said[0] and "\n" not in said[0]
    assert len(list((tmp_path / "out").glob("*.npy"))) == 2


# -- decode ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["c.npy", "other.npy"])
def test_decode_refuses_a_codes_name_for_audio(codes_npy, tmp_path, caplog, target):
    if target != codes_npy.name:
        shutil.copy(codes_npy, tmp_path / target)
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "decode", codes_npy, "-o", tmp_path / target)
    assert code == 1
    one_line(errors, tmp_path / target)
    assert snapshot(tmp_path) == before


def test_decode_output_under_a_regular_file(codes_npy, tmp_path, a_file, caplog):
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "decode", codes_npy, "-o", a_file / "x.wav")
    assert code == 1
    one_line(errors, a_file, "cannot create")
    assert snapshot(tmp_path) == before


def test_decode_output_with_a_trailing_slash_is_a_directory(codes_npy, tmp_path, caplog):
    code, _ = cli(caplog, "decode", codes_npy, "-o", f"{tmp_path / 'back'}/")
    assert code == 0
    assert sf.info(str(tmp_path / "back" / "c.wav")).frames == SR


def test_decode_a_pickle_that_would_run_code(tmp_path, caplog):
    marker = tmp_path / "PWNED"
    bad = evil_pt(tmp_path / "evil.pt", marker)
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "decode", bad)
    assert code == 1
    one_line(errors, bad, "refused")
    assert not marker.exists() and snapshot(tmp_path) == before  # and no evil.decoded.wav


# -- info --------------------------------------------------------------------------------------------------------


def test_info_of_a_missing_codes_file(tmp_path, caplog):
    code, errors = cli(caplog, "info", tmp_path / "nothere.npy")
    assert code == 1
    assert "not a checkpoint" not in one_line(errors, "nothere.npy", "no such file")


def test_info_of_a_peer_checkpoint_that_would_run_code(tmp_path, caplog):
    marker = tmp_path / "PWNED"
    peer = peer_dir(tmp_path / "st", marker)
    code, errors = cli(caplog, "info", f"speechtokenizer:{peer}")
    assert code == 1
    one_line(errors, "SpeechTokenizer.pt", "full unpickle")
    assert not marker.exists()


def test_info_of_a_nan_checkpoint(tiny_ckpt, tmp_path, caplog):
    ckpt = nan_ckpt(tiny_ckpt, tmp_path / "ckpt")
    code, errors = cli(caplog, "info", ckpt)
    assert code == 1
    one_line(errors, ckpt, "NaN")


# -- pretokenize -------------------------------------------------------------------------------------------------


@pytest.fixture()
def manifest(tmp_path) -> Path:
    """Two good rows around a missing, a corrupt and a truncated one."""
    src = tmp_path / "src"
    src.mkdir()
    wav_file(src / "good1.wav")
    (src / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    truncated_wav(src / "cut.wav")
    wav_file(src / "good2.wav", 0.5)
    names = ["good1.wav", "missing.wav", "corrupt.wav", "cut.wav", "good2.wav"]
    path = src / "m.tsv"
    path.write_text("path\n" + "".join(f"{n}\n" for n in names))
    return path


def pretok(caplog, tiny_ckpt, inputs, out, *flags) -> tuple[int, list[str]]:
    return cli(caplog, "pretokenize", tiny_ckpt, inputs, "-o", out, "--no-progress", "--num-workers", 0, *flags)


def rows_and_failures(out: Path) -> tuple[dict[str, float], list[list[str]]]:
    import pyarrow.dataset

    table = pyarrow.dataset.dataset(out, format="parquet").to_table().to_pylist()
    lines = (out / FAILURES_NAME).read_text().splitlines()
    return {r["id"]: r["duration_s"] for r in table}, [line.split("\t") for line in lines[1:]]


def test_pretokenize_missing_rows_name_the_cli_flags(tiny_ckpt, manifest, tmp_path, caplog):
    code, errors = pretok(caplog, tiny_ckpt, manifest, tmp_path / "ds")
    assert code == 1
    line = one_line(errors, manifest, "missing.wav", "--root", "--skip-missing")
    assert "root=" not in line and "skip_missing" not in line
    assert not (tmp_path / "ds").exists()


def test_pretokenize_skip_missing_lists_every_bad_row(tiny_ckpt, manifest, tmp_path, caplog):
    out = tmp_path / "ds"
    code, _ = pretok(caplog, tiny_ckpt, manifest, out, "--skip-missing")
    assert code == 0  # completed; the bad rows are listed, not fatal
    rows, failures = rows_and_failures(out)
    assert sorted(rows) == ["good1", "good2"]
    assert [f[0] for f in failures] == ["missing", "corrupt", "cut"]
    assert "no such file" in failures[0][2] and "unreadable" in failures[1][2] and "truncated" in failures[2][2]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_pretokenize_allow_truncated_keeps_the_partial_row(tiny_ckpt, manifest, tmp_path, caplog):
    out = tmp_path / "ds"
    code, _ = pretok(caplog, tiny_ckpt, manifest, out, "--skip-missing", "--allow-truncated")
    assert code == 0
    rows, failures = rows_and_failures(out)
    assert sorted(rows) == ["cut", "good1", "good2"] and rows["cut"] == pytest.approx(2.0)
    assert [f[0] for f in failures] == ["missing", "corrupt"]


@pytest.mark.parametrize("where", ["under-a-file", "lock-is-a-directory"])
def test_pretokenize_output_that_cannot_be_written(tiny_ckpt, wav, tmp_path, a_file, caplog, where):
    if where == "under-a-file":
        out, words = a_file / "sub", ("somefile.txt", "cannot create")
    else:
        out, words = tmp_path / "ds", ("ds", "cannot write")
        (out / ".lock").mkdir(parents=True)  # open(".lock", "a") fails, for root too
    before = snapshot(tmp_path)
    code, errors = pretok(caplog, tiny_ckpt, wav, out)
    assert code == 1
    one_line(errors, *words)
    assert snapshot(tmp_path) == before


# -- eval --------------------------------------------------------------------------------------------------------


def test_eval_of_an_empty_directory_writes_nothing(tiny_ckpt, tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "results.json"
    code, errors = cli(caplog, "eval", tiny_ckpt, "--data", tmp_path / "empty", "-o", out, "--workers", 0)
    assert code == 1
    one_line(errors, "empty", "no utterances")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no results.json, no results.samples/


# -- the Python API ----------------------------------------------------------------------------------------------


def test_api_n_q_zero_is_a_speechtok_error_and_a_value_error(tok):
    with pytest.raises(ArgumentError, match="n_q=0") as info:
        tok.encode(speech(0.5), SR, n_q=0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SpeechtokError)


@pytest.mark.parametrize("rate", [1, 999, 16000.5, -16000, True])
def test_api_sample_rate_must_be_a_whole_number_of_hz(tok, rate):
    with pytest.raises(AudioError, match=f"invalid sample rate {rate!r}") as info:
        tok.encode(speech(0.5), rate)
    assert "\n" not in str(info.value)


def test_api_whole_float_sample_rate_is_fine(tok):
    assert tok.encode(speech(0.5), 16000.0).codes.shape == (1, 8, 25)


def test_api_loud_float_input_warns_once_and_encodes(tok, caplog, monkeypatch):
    monkeypatch.setattr(audio, "_loud_warned", False)
    x = speech(0.5)
    tok.encode(3.0 * x / x.abs().max(), SR)  # 3x full scale: hot, but under LOUD_PEAK
    assert not [w for w in warnings_of(caplog) if "full scale" in w]
    tok.encode(40 * x, SR)
    tok.encode(40 * x, SR)
    said = [w for w in warnings_of(caplog) if "full scale" in w]
    assert len(said) == 1 and "input" in said[0]


def test_api_truncated_file(tok, tmp_path, caplog):
    bad = truncated_wav(tmp_path / "cut.wav")
    for read in (audio.read, lambda p: tok.encode_file(p)):
        with pytest.raises(AudioError, match="truncated") as info:
            read(bad)
        assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)
    wav, sr = audio.read(bad, allow_truncated=True)
    assert (wav.shape, sr) == ((1, 2 * SR), SR)
    assert tok.encode_file(bad, allow_truncated=True).codes.shape == (1, 8, 100)


def test_api_streamed_wav_is_not_truncated(tmp_path):
    """A WAV written to a pipe leaves the data size 0xFFFFFFFF: not a truncated file."""
    path = wav_file(tmp_path / "stream.wav")
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert audio.read(path)[0].shape == (1, SR)


def test_api_pretokenize_missing_rows_name_python_arguments(tiny_ckpt, manifest, tmp_path):
    with pytest.raises(MissingInputsError, match=r"pass root= or skip_missing=True"):
        pretokenize(tiny_ckpt, manifest, tmp_path / "ds", num_workers=0)
    result = pretokenize(tiny_ckpt, manifest, tmp_path / "ds", num_workers=0, skip_missing=True,
                         allow_truncated=True)
    assert result.rows == 3 and [f.id for f in result.failures] == ["missing", "corrupt"]


@pytest.mark.parametrize("make, match", [(nan_ckpt, "tensor .* NaN"), (corrupt_ckpt, "corrupt safetensors")],
                         ids=["nan", "corrupt"])
def test_api_bad_checkpoint(tiny_ckpt, tmp_path, make, match):
    ckpt = make(tiny_ckpt, tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=match) as info:
        speechtok.load(ckpt)
    assert str(ckpt) in str(info.value) and "\n" not in str(info.value)


def test_api_pickles_that_would_run_code(tmp_path):
    marker = tmp_path / "PWNED"
    with pytest.raises(CodesError, match="refused"):
        Codes.load(evil_pt(tmp_path / "evil.pt", marker))
    with pytest.raises(CheckpointError, match="full unpickle"):
        speechtok.load(f"speechtokenizer:{peer_dir(tmp_path / 'st', marker)}")
    assert not marker.exists()


def test_the_malicious_pickle_does_run_code_when_unpickled(tmp_path):
    """The fixture is real: a full unpickle of it creates its marker (the tests above check nothing does)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(RunsCode(marker)))  # noqa: S301 - our own payload, to prove the point
    assert marker.exists()
