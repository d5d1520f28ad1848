"""Shared fixtures: the tests' tiny codec (a fixed checkpoint in tests/assets), real speech, a corpus."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speechtok import audio
from speechtok.codecs.seanet import SEANetConfig
from speechtok.models import CodecConfig
from speechtok.quantizers.rvq import RVQConfig
from speechtok.vocoders.gan import VocosConfig

TEST_DATA_ENV = "SPEECHTOK_TEST_DATA"  # "none": run as a newcomer's clone with no ../shared; a path: that data


def _test_data() -> Path:
    choice = os.environ.get(TEST_DATA_ENV, "")
    if choice.lower() == "none":
        return Path(__file__).resolve().parent / "no-shared-data"  # never created: every data check sees none
    return Path(choice).expanduser() if choice else Path(__file__).resolve().parents[1].parent / "shared" / "data"


DATA = _test_data()
NEEDS_DATA = "needs ../shared/data (real speech with transcripts and alignments; SPEECHTOK_TEST_DATA)"
LS_CLIP = DATA / "librispeech_samples/audio/test-other/1688/1688-142285-0001.flac"


TINY_CODEC = Path(__file__).resolve().parent / "assets" / "tiny-codec"


def pytest_configure(config) -> None:
    if not DATA.is_dir():  # the library would still find ../shared/data beside the source checkout: hide it too
        os.environ.setdefault("SPEECHTOK_DATA", str(DATA))


# -- which tests take another input without ../shared/data ------------------------------------------------------
# CI runs the suite once as is and once more as a newcomer's clone (SPEECHTOK_TEST_DATA=none), the second time
# only the tests whose input changes: those that called `speech()` (or read evaluation clips), directly or
# through a fixture. The first pass writes their ids to $SPEECHTOK_DATA_DEPENDENT_TESTS.
DATA_DEPENDENT_ENV = "SPEECHTOK_DATA_DEPENDENT_TESTS"
_running: dict[str, list[str]] = {"item": [], "fixtures": []}
_dependent_items: set[str] = set()
_dependent_fixtures: set[str] = set()


def reads_test_data() -> None:
    """Mark the running test (or the fixture being set up) as one whose input depends on ../shared/data."""
    if _running["fixtures"]:
        _dependent_fixtures.add(_running["fixtures"][-1])
    elif _running["item"]:
        _dependent_items.add(_running["item"][-1])


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    _running["fixtures"].append(fixturedef.argname)
    try:
        yield
    finally:
        _running["fixtures"].pop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _running["item"].append(item.nodeid)
    try:
        yield
    finally:
        _running["item"].pop()


def pytest_terminal_summary(terminalreporter) -> None:
    """Skips counted by reason, in one place (`-rs` lists each one)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[-1]).removeprefix("Skipped: ") if isinstance(report.longrepr, tuple) else ""
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.write_sep("-", f"{sum(reasons.values())} skipped, by reason")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{n:4d}  {reason}")


def pytest_sessionfinish(session) -> None:
    path = os.environ.get(DATA_DEPENDENT_ENV)
    if not path or not hasattr(session, "items"):
        return
    ids = _dependent_items | {it.nodeid for it in session.items if _dependent_fixtures & set(it.fixturenames)}
    Path(path).write_text("".join(f"{i}\n" for i in sorted(ids)))


def tiny_config(**rvq) -> CodecConfig:
    """16 kHz, 50 frames/s, 8 codebooks, like the default, but a few thousand parameters."""
    rvq = {"codebook_dim": 8, **rvq}  # = dim: no projection; 64 codes in 8-d leave every layer a residual
    return CodecConfig(
        sample_rate=16000,
        encoder=SEANetConfig(channels=4, dim=8),
        quantizer=RVQConfig(dim=8, num_codebooks=8, codebook_size=64, **rvq),
        decoder=VocosConfig(input_dim=8, dim=16, intermediate_dim=32, num_layers=2, n_fft=640, hop_length=320),
    )


def speech(seconds: float = 2.0, sample_rate: int = 16000) -> torch.Tensor:
    """Real speech [T] from LS-test when ../shared/data is there, else a deterministic synthetic voice-like signal."""
    reads_test_data()
    if LS_CLIP.is_file():
        wav = audio.load(LS_CLIP, sample_rate)[0, 0]
        return wav[: int(seconds * sample_rate)]
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 30 * torch.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * torch.cumsum(f0, 0) / sample_rate
    voice = sum(torch.sin(k * phase) / k for k in range(1, 20))
    return (0.1 * voice * (0.6 + 0.4 * torch.sin(2 * np.pi * 3 * t))).float()


def make_tiny_codec():
    """The tests' codec, from its fixed checkpoint (tests/assets/build_tiny_codec.py says how it was made)."""
    from speechtok import load

    return load(TINY_CODEC)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A copy of tests/assets/tiny-codec: tests may write beside it, never into the repository."""
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-codec"
    shutil.copytree(TINY_CODEC, directory)
    return directory


@pytest.fixture()
def tok(tiny_ckpt):
    from speechtok import load

    return load(tiny_ckpt)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A directory of four 2 s training clips of real speech (test files may define their own `corpus`)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("corpus")
    clip = speech(6.0).numpy()
    for i in range(4):
        sf.write(root / f"utt{i}.wav", clip[i * 16000 : (i + 2) * 16000], 16000)
    return root


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: OpenMP threads that wait for each other cost up to 50x."""
    with torch_threads(1):
        yield
