"""X-Codec2 behind the speechtok API, against the `xcodec2` package's own `encode_code` / `decode_code`: the
package's model built small in a process of its own with its pinned vector-quantize-pytorch
(tests/peers/xcodec2_official.py), saved in the publisher's layout; loaded by path in that layout and, converted,
in the `transformers` layout (hf-audio/xcodec2)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import speechtok
from speechtok.errors import CheckpointError

from .test_adapters import _check_batch, _check_decode, _check_identity

pytest.importorskip("transformers")
if importlib.util.find_spec("xcodec2") is None:
    pytest.skip("xcodec2 not installed (see .ci/peers.txt)", allow_module_level=True)

# .ci/run installs the package's pin there, beside the venv's own release
PINNED_VQ = Path(sys.prefix) / "pinned" / "vector-quantize-pytorch-1.17.8"
PEERS = Path(__file__).parent / "peers"


def run_official(script: str, out: Path, pinned: Path = PINNED_VQ, *args: str) -> Path:
    """tests/peers/SCRIPT in a process of its own, with the package's pinned dependencies (`pinned`) first."""
    if not pinned.is_dir():
        pytest.skip(f"the package's pinned dependencies are not at {pinned} (.ci/run installs them)")
    env = {**os.environ, "PYTHONPATH": str(pinned)}
    run = subprocess.run([sys.executable, str(PEERS / script), str(out), *args], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return run_official("xcodec2_official.py", tmp_path_factory.mktemp("xcodec2"))


def test_xcodec2_matches_the_package_in_both_layouts(official, tmp_path):
    from safetensors.torch import load_file

    expected = load_file(official / "expected.safetensors")
    tok = speechtok.load(f"xcodec2:{official / 'official'}")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 50, 1, 4**8)
    for n in (16077, 9600):
        wav = expected[f"wav_{n}"]
        codes = tok.encode(wav, 16000)
        assert codes.codes.shape[-1] == n // 320 + 1 and len(set(codes.codes.flatten().tolist())) > 5
        torch.testing.assert_close(codes.codes, expected[f"codes_{n}"].long(), rtol=0, atol=0)
        _check_decode(tok.decode(codes), expected[f"audio_{n}"])
    _check_batch(tok, 16000, 8000)
    both = torch.cat([expected["wav_9600"], expected["wav_16077"][..., :9600]])  # equal lengths: one batch
    torch.testing.assert_close(tok.encode(both, 16000).codes[:1], expected["codes_9600"].long(), rtol=0, atol=0)
    _check_identity(tok, official / "official" / "config.json", official / "official" / "model.safetensors")

    tok.peer.save_pretrained(tmp_path / "hf")  # the same weights in the transformers layout (hf-audio/xcodec2)
    hf = speechtok.load(f"xcodec2:{tmp_path / 'hf'}")
    wav = expected["wav_16077"]
    torch.testing.assert_close(hf.encode(wav, 16000).codes, tok.encode(wav, 16000).codes, rtol=0, atol=0)


def test_xcodec2_refuses_what_it_cannot_read(official, tmp_path):
    from safetensors.torch import load_file, save_file

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "mimi"}')
    with pytest.raises(CheckpointError, match="not an X-Codec2 directory"):
        speechtok.load(f"xcodec2:{tmp_path / 'other'}")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((official / "official" / "config.json").read_bytes())
    state = load_file(official / "official" / "model.safetensors")
    del state["fc_post_a.weight"]
    save_file(state, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="no fc_post_a.weight: not xcodec2 weights"):
        speechtok.load(f"xcodec2:{broken}")
