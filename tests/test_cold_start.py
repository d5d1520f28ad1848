"""Using a tokenizer imports what it needs only: an RVQ codec loads without vector-quantize-pytorch (whose import
pulls in einx and torch._dynamo, about a second of start-up), and its lean RVQ is the training RVQ's twin."""

import subprocess
import sys

import pytest
import torch

from speechtok.checkpoint import read_config, read_weights
from speechtok.models.loading import build_from_config
from speechtok.quantizers.rvq import RVQ, RVQConfig, StoredResidualVQ

from .conftest import TINY_CODEC, speech

HEAVY = ("vector_quantize_pytorch", "vector_quantize_pytorch.residual_fsq", "einx", "torch._dynamo")


def test_loading_the_bundled_rvq_codec_imports_no_fsq():
    code = ("import sys, speechtok\n"
            "tok = speechtok.load('speechtok-codec-16k')\n"
            "tok.encode_file('examples/sample.flac')\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=TINY_CODEC.parents[2])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_lean_rvq_encodes_and_decodes_as_the_training_one(one_thread):
    meta = read_config(TINY_CODEC)
    weights = read_weights(TINY_CODEC)
    lean = build_from_config(meta, TINY_CODEC, inference=True).eval()
    full = build_from_config(meta, TINY_CODEC, inference=False).eval()
    assert isinstance(lean.quantizer.vq, StoredResidualVQ) and not isinstance(full.quantizer.vq, StoredResidualVQ)
    lean.load_state_dict(weights)
    full.load_state_dict(weights, strict=False)  # the full one also has the EMA sums loading derives
    wav = speech(1.0)
    a, b = lean.encode(wav, 16000), full.encode(wav, 16000)
    assert torch.equal(a.codes, b.codes)
    torch.testing.assert_close(lean.decode(a), full.decode(b), rtol=0, atol=0)


def test_lean_rvq_refuses_to_train():
    rvq = RVQ(RVQConfig(dim=8, num_codebooks=2, codebook_size=4, codebook_dim=None), inference=True)
    with pytest.raises(RuntimeError, match="built for inference"):
        rvq(torch.zeros(1, 8, 3))
