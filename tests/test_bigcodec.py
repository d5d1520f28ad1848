"""BigCodec behind the speechtok API, against the `bigcodec` package's own `BigCodec.encode` / `decode` (after the
publisher's inference.py padding): a small random-weight model saved in the package's hub layout and as the
publisher's `bigcodec.pt`, each loaded by path."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import speechtok
from speechtok.errors import CheckpointError

from .test_adapters import _check_batch, _check_decode, _check_identity, _need, _noise

SMALL = dict(ngf=4, use_rnn=True, rnn_bidirectional=False, rnn_num_layers=1, up_ratios=[2, 2, 2, 5, 5],
             dilations=[1, 3, 9], out_channels=32, codebook_size=64, vq_num_quantizers=1, codebook_dim=8)


@pytest.fixture(scope="module")
def package_model():
    bc = _need("bigcodec")
    torch.manual_seed(0)
    model = bc.BigCodec(**SMALL).eval()  # its decoder keeps the published 1536 channels: the package fixes them
    with torch.no_grad():  # a random encoder's output fades beside the VQ's input bias: codes vary without that
        model.decoder.quantizer.layers[0].in_proj.bias.zero_()
        for name, p in model.encoder.named_parameters():
            if name.endswith("original0"):  # weight norm's gains, doubled: each block then keeps the level
                p.mul_(2)
    return model


def _theirs(model, wav):
    padded = F.pad(wav, (0, 200 - wav.shape[-1] % 200))  # inference.py's padding
    with torch.no_grad():
        codes = model.encode(padded)
        return codes, model.decode(codes)


def test_bigcodec_in_the_package_layout(package_model, tmp_path):
    package_model.save_pretrained(tmp_path / "hub")  # config.json of its arguments + model.safetensors
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["codebook_size"] == 64
    tok = speechtok.load(f"bigcodec:{tmp_path / 'hub'}")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 80, 1, 64)
    for n in (8077, 4000):  # 4000 = 20 hops: a whole extra frame
        wav = _noise(16000, n)
        theirs_codes, theirs = _theirs(package_model, wav)
        codes = tok.encode(wav, 16000)
        assert codes.codes.shape[-1] == n // 200 + 1 and len(set(codes.codes.flatten().tolist())) > 5
        torch.testing.assert_close(codes.codes, theirs_codes.long(), rtol=0, atol=0)
        _check_decode(tok.decode(codes), theirs)
    _check_batch(tok, 16000, 3000)
    _check_identity(tok, tmp_path / "hub" / "config.json", tmp_path / "hub" / "model.safetensors")


def test_bigcodec_in_the_publishers_layout(package_model, tmp_path):
    """bigcodec.pt: the encoder and decoder state dicts, weight norm in the older weight_g / weight_v names."""
    def old_names(state):
        return {k.replace(".parametrizations.weight.original0", ".weight_g")
                 .replace(".parametrizations.weight.original1", ".weight_v"): v for k, v in state.items()}

    torch.save({"CodecEnc": old_names(package_model.encoder.state_dict()),
                "generator": old_names(package_model.decoder.state_dict())}, tmp_path / "bigcodec.pt")
    tok = speechtok.load(f"bigcodec:{tmp_path / 'bigcodec.pt'}")
    wav = _noise(16000, 6789, seed=2)
    theirs_codes, theirs = _theirs(package_model, wav)
    codes = tok.encode(wav, 16000)
    torch.testing.assert_close(codes.codes, theirs_codes.long(), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)

    torch.save({"CodecEnc": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a BigCodec checkpoint"):
        speechtok.load(f"bigcodec:{tmp_path / 'other.pt'}")
