"""The Qwen3-TTS 12 Hz tokenizer behind the speechtok API, against the `qwen-tts` package's own
`Qwen3TTSTokenizer.encode` / `decode`: the package's model built small in a process of its own with its pinned
transformers 4.57 (tests/peers/qwen_tts_official.py), saved in the publisher's layout and loaded by path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import speechtok
from speechtok.errors import CheckpointError

from .test_adapters import _check_batch, _check_identity
from .test_xcodec2 import run_official

pytest.importorskip("transformers")

# .ci/run installs the package and its pins there: qwen-tts 0.1.1 with transformers 4.57.3 and what it imports
PINNED_QWEN_TTS = Path(sys.prefix) / "pinned" / "qwen-tts-0.1.1"
LENGTHS = (72000, 175217, 600000)  # as the script writes them: 38, 92 (past the 72-frame window) and 313 frames


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return run_official("qwen_tts_official.py", tmp_path_factory.mktemp("qwen_tts"), PINNED_QWEN_TTS)


def test_qwen_tts_matches_the_package(official):
    from safetensors.torch import load_file

    expected = load_file(official / "expected.safetensors")
    tok = speechtok.load(f"qwen-tts:{official / 'official'}")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (24000, 12.5, 8, 64)
    for n in LENGTHS:
        codes = tok.encode(expected[f"wav_{n}"][None, None], 24000)
        assert codes.codes.shape[-1] == -(-n // 1920) and len(set(codes.codes.flatten().tolist())) > 20
        torch.testing.assert_close(codes.codes[0], expected[f"codes_{n}"], rtol=0, atol=0)
        theirs = expected[f"audio_{n}"]  # whole frames; ours is cut to the input's length
        assert theirs.std() > 0.1
        torch.testing.assert_close(tok.decode(codes)[0, 0], theirs[:n], atol=1e-5, rtol=0)
    _check_batch(tok, 24000, 48000)
    _check_identity(tok, official / "official" / "config.json", official / "official" / "model.safetensors")


def test_qwen_tts_fewer_codebooks(official):
    tok = speechtok.load(f"qwen-tts:{official / 'official'}?q=3")
    full = speechtok.load(f"qwen-tts:{official / 'official'}")
    wav = 0.1 * torch.randn(1, 1, 30000, generator=torch.Generator().manual_seed(3))
    codes = tok.encode(wav, 24000)
    assert codes.codes.shape[1] == 3 and "the first 3 are summed" in tok.adapter_info["notes"]
    torch.testing.assert_close(codes.codes, full.encode(wav, 24000).codes[:, :3], rtol=0, atol=0)  # residual order
    assert tok.decode(codes).shape == wav.shape
    with pytest.raises(CheckpointError, match=r"q=9 is out of range 1\.\.8"):
        speechtok.load(f"qwen-tts:{official / 'official'}?q=9")


def test_qwen_tts_refuses_what_it_cannot_read(official, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mimi"}))
    with pytest.raises(CheckpointError, match="not a Qwen3-TTS 12 Hz tokenizer directory"):
        speechtok.load(f"qwen-tts:{tmp_path}")
    config = json.loads((official / "official" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file

    state = load_file(official / "official" / "model.safetensors")
    del state["decoder.pre_conv.conv.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: weights do not fit the model"):
        speechtok.load(f"qwen-tts:{tmp_path}")

