"""Checkpoint directories: every broken one is a one-line CheckpointError naming the file."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import speechtok
from speechtok.errors import CheckpointError, UnknownTokenizerError


@pytest.fixture()
def ckpt(tiny_ckpt, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, copy)
    return copy


def test_missing_config(ckpt):
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        speechtok.load(ckpt)


def test_corrupt_config(ckpt):
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: corrupt JSON"):
        speechtok.load(ckpt)


def test_unknown_format_and_family(ckpt):
    meta = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        speechtok.load(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**meta, "family": "nope"}))
    with pytest.raises(CheckpointError, match="unknown family 'nope'"):
        speechtok.load(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "bogus": 1}}))
    with pytest.raises(CheckpointError, match="bogus"):
        speechtok.load(ckpt)


def test_missing_and_corrupt_weights(ckpt):
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt"):
        speechtok.load(ckpt)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        speechtok.load(ckpt)


def test_weights_that_do_not_match(ckpt):
    state = load_file(ckpt / "model.safetensors")
    state.pop(next(iter(state)))
    save_file(state, ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not match"):
        speechtok.load(ckpt)


def test_sharded_weights(ckpt):
    """Hugging Face-style shards with an index load like one file."""
    state = load_file(ckpt / "model.safetensors")
    keys = sorted(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    weight_map = {}
    for i, part in enumerate(halves, 1):
        name = f"model-{i:05d}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, ckpt / name)
        weight_map.update(dict.fromkeys(part, name))
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    tok = speechtok.load(ckpt)
    assert torch.equal(tok.state_dict()[keys[0]], state[keys[0]])


def test_unknown_name():
    with pytest.raises(UnknownTokenizerError, match="no-such-tokenizer"):
        speechtok.load("no-such-tokenizer")


def test_half_precision_weights_and_derived_state(tiny_ckpt, tmp_path):
    """float16 files hold half the bytes and load back as float32; EMA sums are left out and re-derived."""
    tok = speechtok.load(tiny_ckpt)
    half = tok.save(tmp_path / "half", dtype=torch.float16)
    assert json.loads((half / "config.json").read_text())["weights_dtype"] == "float16"
    stored = load_file(half / "model.safetensors")
    assert not any(k.endswith("embed_avg") for k in stored)
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    back = speechtok.load(half)  # a lean inference RVQ: no EMA sums at all
    assert all(v.dtype == torch.float32 for v in back.state_dict().values() if v.is_floating_point())
    assert not any(k.endswith("embed_avg") for k in back.state_dict())
    from speechtok.checkpoint import read_config
    from speechtok.models.loading import build_from_config

    trainable = build_from_config(read_config(half), half)  # as training builds it, then loads the weights
    trainable.load_state_dict(back.state_dict(), strict=False)
    state = trainable.state_dict()
    for key in (k for k in state if k.endswith("._codebook.embed")):
        base = key[: -len("embed")]
        expected = state[key] * state[base + "cluster_size"][..., None]
        torch.testing.assert_close(state[base + "embed_avg"], expected)
    full = (tiny_ckpt / "model.safetensors").stat().st_size
    assert (half / "model.safetensors").stat().st_size < 0.6 * full


def test_only_the_named_modules_are_halved(tiny_ckpt, tmp_path):
    """A vocoder stored in float16 beside codes-making weights kept exact: the codes do not change."""
    tok = speechtok.load(tiny_ckpt)
    half = tok.save(tmp_path / "half-decoder", dtype=torch.float16, dtype_modules=("decoder",))
    meta = json.loads((half / "config.json").read_text())
    assert (meta["weights_dtype"], meta["weights_dtype_modules"]) == ("float16", ["decoder"])
    stored = load_file(half / "model.safetensors")
    assert {k.split(".")[0] for k, v in stored.items() if v.dtype == torch.float16} == {"decoder"}
    assert all(v.dtype == torch.float32 for k, v in stored.items() if v.is_floating_point() and
               not k.startswith("decoder."))
    wav = 0.1 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0))
    back = speechtok.load(half)
    assert torch.equal(back.encode(wav, tok.sample_rate).codes, tok.encode(wav, tok.sample_rate).codes)
    with pytest.raises(ValueError, match="vocoder"):
        tok.save(tmp_path / "bad", dtype=torch.float16, dtype_modules=("vocoder",))


def test_written_files_are_readable_by_others(tiny_ckpt, tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the final files get the ordinary umask mode."""
    import os

    old = os.umask(0o022)
    try:
        out = speechtok.load(tiny_ckpt).save(tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert all((f.stat().st_mode & 0o777) == 0o644 for f in out.iterdir())
