"""The CLI end to end, in subprocesses, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechtok import Codes

from .conftest import speech
from .plugins import tokenizer_plugin


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "speechtok.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture()
def wavs(tmp_path):
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    clip = speech(2.0).numpy()
    sf.write(root / "a.wav", clip, 16000)
    sf.write(root / "sub" / "b.flac", clip[:16000], 16000)
    sf.write(root / "sub" / "c.wav", np.stack([clip, clip], 1), 22050)  # stereo at another rate
    return root


def test_help_everywhere():
    for cmd in ([], ["encode"], ["decode"], ["info"], ["list"]):
        out = run(*cmd, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout
    assert run().returncode == 2
    assert run("encode").returncode == 2  # missing argument: argparse's usage error


def test_encode_decode_one_file(tiny_ckpt, wavs, tmp_path):
    out = tmp_path / "codes.npy"
    res = run("encode", wavs / "a.wav", "-o", out, "--model", tiny_ckpt)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # data went to the file, logs (none) to stderr
    codes = Codes.load(out)
    assert codes.codes.shape == (1, 8, 100)
    wav_out = tmp_path / "back.wav"
    res = run("decode", out, "-o", wav_out)  # no flags: the codes name their tokenizer
    assert res.returncode == 0, res.stderr
    data, sr = sf.read(wav_out)
    assert sr == 16000 and data.shape == (32000,)
    assert not list(tmp_path.glob(".*.tmp"))
    res = run("decode", out, "-o", tmp_path / "steps.wav", "--steps", 4)  # a GAN decoder has no ODE steps
    assert res.returncode == 1 and "takes no steps" in res.stderr


def test_encode_directory_mirrors_subfolders(tiny_ckpt, wavs, tmp_path):
    out = tmp_path / "codes"
    res = run("encode", wavs, "-o", out, "--model", tiny_ckpt, "--n-q", 3, "--format", "safetensors")
    assert res.returncode == 0, res.stderr
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.safetensors"))
    assert made == ["a.safetensors", "sub/b.safetensors", "sub/c.safetensors"]
    assert Codes.load(out / "sub" / "c.safetensors").codes.shape[1] == 3
    back = tmp_path / "back"
    assert run("decode", out, "-o", back).returncode == 0
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*.wav")) == ["a.wav", "sub/b.wav", "sub/c.wav"]


def test_encode_beside_inputs(tiny_ckpt, wavs):
    assert run("encode", wavs / "a.wav", wavs / "sub" / "b.flac", "--model", tiny_ckpt).returncode == 0
    assert (wavs / "a.npy").is_file() and (wavs / "a.npy.json").is_file() and (wavs / "sub" / "b.npy").is_file()
    assert run("decode", wavs / "a.npy").returncode == 0
    assert (wavs / "a.decoded.wav").is_file() and (wavs / "a.wav").is_file()


def test_bad_file_among_several(tiny_ckpt, wavs, tmp_path):
    (wavs / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    sf.write(wavs / "empty.wav", np.zeros(0), 16000)
    sf.write(wavs / "short.wav", np.zeros(50), 16000)
    out = tmp_path / "codes"
    res = run("encode", wavs, "-o", out, "--model", tiny_ckpt)
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if "broken.wav" in line or "empty.wav" in line
              or "short.wav" in line]
    assert len(errors) == 3 and all(len(e) < 300 for e in errors), res.stderr
    assert "3 of 6 files failed" in res.stderr
    assert len(list(out.rglob("*.npy"))) == 3  # the good ones were done
    assert not list(out.rglob(".*.tmp"))  # nothing half-written


def test_bad_model_and_codes(tiny_ckpt, wavs, tmp_path):
    res = run("encode", wavs / "a.wav", "--model", tmp_path / "nowhere")
    assert res.returncode == 1 and "nowhere" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "x.npy"
    garbage.write_bytes(b"not numpy")
    res = run("decode", garbage, "-o", tmp_path / "x.wav")
    assert res.returncode == 1 and "x.npy" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.wav").exists()


def test_info_and_list(tiny_ckpt, wavs, tmp_path):
    res = run("info", tiny_ckpt, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["sample_rate"] == 16000 and info["num_codebooks"] == 8 and info["bitrate"] == 2400.0
    run("encode", wavs / "a.wav", "-o", tmp_path / "a.pt", "--model", tiny_ckpt)
    res = run("info", tmp_path / "a.pt")
    assert res.returncode == 0 and "frame_rate\t50.0" in res.stdout
    assert run("list").returncode == 0


def test_plugin_entry_point(tiny_ckpt, tmp_path):
    """A third-party tokenizer registered under `speechtok.tokenizers` is listed and loads by name."""
    site = tokenizer_plugin(tmp_path / "site", tiny_ckpt)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    res = run("list", env=env)
    assert res.returncode == 0 and "mytok\tplugin\tmytok_plugin:load" in res.stdout
    code = ("import speechtok; t = speechtok.load('mytok'); u = speechtok.load('mytok:" + str(tiny_ckpt) + "');"
            "print(t.num_codebooks, u.source)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["8", f"mytok:{tiny_ckpt}"]
