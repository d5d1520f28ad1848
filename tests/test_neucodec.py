"""NeuCodec behind the speechtok API, against the `neucodec` package's own `encode_code` / `decode_code`: the
package's model built small in a process of its own with its pinned vector-quantize-pytorch
(tests/peers/neucodec_official.py), saved as the publisher's `pytorch_model.bin`; loaded by path in that layout
and, converted, in the `transformers` layout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import speechtok
from speechtok import audio
from speechtok.errors import CheckpointError

from .test_adapters import _check_batch, _check_identity
from .test_xcodec2 import run_official

pytest.importorskip("transformers")
if importlib.util.find_spec("neucodec") is None:
    pytest.skip("neucodec not installed (see .ci/peers.txt)", allow_module_level=True)


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return run_official("neucodec_official.py", tmp_path_factory.mktemp("neucodec"))


def test_neucodec_matches_the_package_in_both_layouts(official, tmp_path):
    from safetensors.torch import load_file

    expected = load_file(official / "expected.safetensors")
    tok = speechtok.load(f"neucodec:{official}")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 50, 1, 4**8)
    assert "24 kHz output is resampled to 16 kHz" in tok.adapter_info["notes"]
    for n in (16077, 9600):
        codes = tok.encode(expected[f"wav_{n}"], 16000)
        assert codes.codes.shape[-1] == n // 320 and len(set(codes.codes.flatten().tolist())) > 5
        torch.testing.assert_close(codes.codes, expected[f"codes_{n}"].long(), rtol=0, atol=0)
        theirs = torch.from_numpy(audio.resample(expected[f"audio_{n}"].numpy(), 24000, 16000))  # at our rate
        ours = tok.decode(codes)  # the input's length; the codes cover whole hops of it
        assert ours.shape[-1] == n and theirs.shape[-1] == n // 320 * 320
        torch.testing.assert_close(ours[..., :theirs.shape[-1]], theirs, atol=1e-4, rtol=0)
    _check_batch(tok, 16000, 8000)
    both = torch.cat([expected["wav_9600"], expected["wav_16077"][..., :9600]])  # equal lengths: one batch
    torch.testing.assert_close(tok.encode(both, 16000).codes[:1], expected["codes_9600"].long(), rtol=0, atol=0)
    _check_identity(tok, official / "pytorch_model.bin")

    tok.peer.save_pretrained(tmp_path / "hf")  # the same weights in the transformers layout
    hf = speechtok.load(f"neucodec:{tmp_path / 'hf'}")
    wav = expected["wav_16077"]
    torch.testing.assert_close(hf.encode(wav, 16000).codes, tok.encode(wav, 16000).codes, rtol=0, atol=0)


def test_neucodec_refuses_what_it_cannot_read(official, tmp_path):
    state = torch.load(official / "pytorch_model.bin", weights_only=True)
    del state["fc_prior.weight"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="not neucodec weights in the neucodec package's names"):
        speechtok.load(f"neucodec:{tmp_path}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: "):
        speechtok.load(f"neucodec:{tmp_path}")
