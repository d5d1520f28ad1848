"""What `encode` / `decode` tell the user: one line on success, the two-positional form, progress off a terminal."""

import io
import logging
import os
import subprocess
import sys
import time

import pytest
import soundfile as sf

from speechtok import Codes
from speechtok.cli import main
from speechtok.runtime.progress import LineProgress, progress

from .conftest import speech


@pytest.fixture()
def clip(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, speech(1.5).numpy(), 16000)  # 1.5 s: 75 frames at 50 frames/s
    return path


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "speechtok"]


def test_encode_and_decode_say_what_they_wrote(tiny_ckpt, clip, tmp_path, caplog, one_thread):
    caplog.set_level(logging.INFO, logger="speechtok")
    out = tmp_path / "codes.npy"
    assert main(["encode", str(clip), "-o", str(out), "--model", str(tiny_ckpt)]) == 0
    assert _messages(caplog) == [f"wrote {out}: codes [8, 75], 1.50 s of audio at 50 frames/s, tiny-codec"]
    caplog.clear()
    back = tmp_path / "back.wav"
    assert main(["decode", str(out), "-o", str(back)]) == 0
    assert _messages(caplog) == [f"wrote {back}: 1.50 s at 16000 Hz from codes [8, 75], tiny-codec"]
    assert sf.info(back).frames == 24000


def test_two_positional_names_the_output(tiny_ckpt, clip, tmp_path, caplog, one_thread):
    """`encode in.wav out.npy` is `encode in.wav -o out.npy`; `decode in.npy out.wav` likewise."""
    by_flag, by_position = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["encode", str(clip), "-o", str(by_flag), "--model", str(tiny_ckpt)]) == 0
    assert main(["encode", str(clip), str(by_position), "--model", str(tiny_ckpt)]) == 0
    assert Codes.load(by_position).codes.equal(Codes.load(by_flag).codes)
    assert main(["decode", str(by_position), str(tmp_path / "b.wav")]) == 0
    assert sf.info(tmp_path / "b.wav").frames == 24000


@pytest.mark.parametrize("argv_tail, expected", [
    (["encode", "{clip}", "{tmp}/out.wav"], "{tmp}/out.wav: no such file; to write codes there, name it .npy, .pt "
                                            "or .safetensors (encode {clip} OUT, or -o OUT)"),
    (["decode", "{tmp}/c.npy", "{tmp}/out.npy"], "{tmp}/out.npy: no such file; to write audio there, name it .wav "
                                                "or .flac (decode {tmp}/c.npy OUT, or -o OUT)"),
    (["encode", "{tmp}", "{tmp}/new.npy"], "{tmp}/new.npy: the output of two names must follow an input file "
                                           "({tmp} is not one); for a directory give -o DIR"),
])
def test_two_positional_refused_in_one_line(tiny_ckpt, clip, tmp_path, caplog, argv_tail, expected):
    (tmp_path / "c.npy").write_bytes(b"")  # decode's input exists; its output name is the problem
    fill = {"clip": clip, "tmp": tmp_path}
    argv = [a.format(**fill) for a in argv_tail] + (["--model", str(tiny_ckpt)] if argv_tail[0] == "encode" else [])
    assert main(argv) == 2
    assert _messages(caplog) == [expected.format(**fill)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy", "in.wav"]  # nothing written


def test_line_progress_off_a_terminal():
    """Off a terminal: whole lines (no carriage return), rate-limited, a last line at the end; silence for short
    work; a real tqdm bar on a terminal."""
    out = io.StringIO()
    with progress(total=0, desc="eval", unit="utt", file=out, interval_s=0.02) as bar:
        assert isinstance(bar, LineProgress)
        bar.total += 3
        for _ in range(3):
            time.sleep(0.03)
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and lines and lines[-1].startswith("speechtok: eval: 3/3 utt [")
    assert len(lines) == len(set(lines)) <= 3  # at most one line an update, the last not repeated

    quiet = io.StringIO()
    assert list(progress(range(5), desc="encode", unit="file", file=quiet, interval_s=60)) == list(range(5))
    assert quiet.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert not isinstance(progress(range(2), desc="x", file=Terminal()), LineProgress)


def test_cli_progress_lines_under_nohup(tiny_ckpt, tmp_path):
    """Several files, stderr a pipe (as under nohup): progress lines, then one summary line."""
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", speech(1.0).numpy(), 16000)
    env = {**os.environ, "SPEECHTOK_PROGRESS_SECONDS": "0", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "encode", str(tmp_path / "a.wav"),
                          str(tmp_path / "b.wav"), "-o", str(tmp_path / "codes"), "--model", str(tiny_ckpt)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert "\r" not in res.stderr
    assert any(ln.startswith("speechtok: encode: 2/2 file [") for ln in lines), lines
    assert lines[-1] == f"speechtok: encoded 2 files, 2.0 s of audio, tiny-codec -> {tmp_path / 'codes'}"
