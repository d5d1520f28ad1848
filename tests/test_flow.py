"""The flow-matching decoder: its spectrum is invertible, its ODE sampler converges and is seeded, the flow task
trains it on a frozen tokenizer, and the exported tokenizer decodes the base tokenizer's codes."""

import subprocess
import sys

import pytest
import torch

import speechtok
from speechtok.config import to_dict
from speechtok.errors import CodesError
from speechtok.training.recipe import load_recipe, recipe_from_dict
from speechtok.training.trainer import Trainer, build_task, load_run
from speechtok.vocoders.flow import FlowConfig, FlowDecoder

from .conftest import speech

TINY = FlowConfig(input_dim=8, dim=16, intermediate_dim=32, num_layers=2, n_fft=640, hop_length=320, steps=4)


def tiny_flow_recipe(base, **train) -> dict:
    return {
        "task": "flow", "model": to_dict(TINY), "task_config": {"tokenizer": str(base), "name": "tiny-flow"},
        "data": {"sources": ["."], "segment_seconds": 0.2, "sample_rate": 16000},
        "train": {"steps": 2, "batch_size": 2, "log_every": 1, "checkpoint_every": 2, "ema_decay": 0.9, **train},
        "optim": {"decoder": {"lr": 3e-3}},
    }


def test_spectrum_is_invertible():
    dec = FlowDecoder(TINY)
    wav = speech(0.5)[None, None]
    x = dec.spectrum(wav)
    assert x.shape == (1, 2 * 321, 25)
    torch.testing.assert_close(dec.waveform(x), wav, atol=1e-5, rtol=0)


def test_sampler_is_seeded_and_converges():
    torch.manual_seed(0)
    dec = FlowDecoder(TINY).eval()
    z = torch.randn(2, 8, 10)
    with torch.no_grad():
        ref = dec.sample(z, 64, "midpoint")
        assert ref.shape == (2, 642, 10) and torch.isfinite(ref).all()
        assert torch.equal(dec.sample(z, 3, "euler"), dec.sample(z, 3, "euler"))  # same codes, same sample
        err = {(m, n): (dec.sample(z, n, m) - ref).norm().item() for m in ("euler", "midpoint") for n in (2, 6, 24)}
        other = FlowDecoder(FlowConfig(**{**to_dict(TINY), "seed": 1}))
        other.load_state_dict(dec.state_dict())
        assert not torch.allclose(other.sample(z, 3, "euler"), dec.sample(z, 3, "euler"))  # the seed is the noise
        wav = dec(z, steps=2, method="euler")
    assert err["euler", 2] > err["euler", 6] > err["euler", 24]  # more steps: closer to the ODE's solution
    assert err["midpoint", 2] > err["midpoint", 6] > err["midpoint", 24]
    assert err["midpoint", 6] < err["euler", 6]  # second order beats first order at the same step count
    assert wav.shape == (2, 1, 3200)
    with pytest.raises(ValueError, match="unknown ODE method 'rk4'"):
        dec.sample(z, 2, "rk4")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        dec.sample(z, 0, "euler")


def test_loss_falls_on_a_fixed_batch(tiny_ckpt):
    torch.manual_seed(0)
    task = build_task(recipe_from_dict(tiny_flow_recipe(tiny_ckpt)))
    assert not any(p.requires_grad for p in task.base.parameters())  # the tokenizer stays frozen
    frozen = {k: v.clone() for k, v in task.base.state_dict().items()}
    opt = torch.optim.AdamW(task.decoder.parameters(), lr=1e-2)

    def update(group, loss):
        assert group == "decoder"
        opt.zero_grad()
        loss.backward()
        opt.step()

    batch = torch.stack([speech(0.4)[i * 3200 : (i + 1) * 3200] for i in range(2)])[:, None]
    losses = []
    for i in range(30):
        torch.manual_seed(1)  # the same noise, time and n_q every step: a fixed objective that can be fitted
        losses.append(task.step(batch, step=i, update=update)["flow/mse"])
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    assert all(torch.equal(v, task.base.state_dict()[k]) for k, v in frozen.items())


def test_train_export_and_decode_the_base_codes(tiny_ckpt, tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    recipe = tiny_flow_recipe(tiny_ckpt)
    recipe["data"]["sources"] = [str(tmp_path / "corpus")]
    (tmp_path / "corpus").mkdir()
    import soundfile as sf

    for i in range(2):
        sf.write(tmp_path / "corpus" / f"{i}.wav", speech(2.0).numpy()[i * 8000 :], 16000)
    Trainer(recipe_from_dict(recipe), run).fit()
    tok = load_run(run).export()
    assert tok.family == "flow-decoded" and tok.name == "tiny-flow"
    flow = speechtok.load(tok.save(tmp_path / "ckpt"))
    base = speechtok.load(tiny_ckpt)
    wav = speech(1.0)
    codes = base.encode(wav, 16000)
    assert torch.equal(flow.encode(wav, 16000).codes, codes.codes)  # the same encoder and quantizer
    out = flow.decode(codes)  # the base's codes decode here (same codes identity)
    assert out.shape == (1, 1, 16000) and torch.equal(out, flow.decode(codes))
    assert not torch.equal(flow.decode(codes, steps=1, method="euler"), out)
    assert flow.decode(codes.codes[:, :3], steps=2).shape == (1, 1, 16000)  # any n_q
    assert torch.equal(base.decode(flow.encode(wav, 16000)), base.decode(codes))
    with pytest.raises(ValueError, match="takes no steps"):
        base.decode(codes, steps=4)
    other = speechtok.load(tok.save(tmp_path / "ckpt"))
    other.codes_hash = "0" * 12
    with pytest.raises(CodesError, match="cannot be decoded"):
        other.decode(codes)


def test_flow_decoder_is_rejected_when_its_hop_does_not_fit(tiny_ckpt):
    recipe = tiny_flow_recipe(tiny_ckpt)
    recipe["model"] = to_dict(FlowConfig(input_dim=8, dim=16, intermediate_dim=32, num_layers=1, n_fft=320,
                                         hop_length=160))
    with pytest.raises(ValueError, match="hop_length 160"):
        build_task(recipe_from_dict(recipe))


def test_bundled_recipe_and_loading_imports_no_training_code(tiny_ckpt, tmp_path):
    recipe = load_recipe("flow")
    assert recipe.task == "flow" and recipe.task_config["tokenizer"] == "speechtok-codec-16k"
    assert FlowConfig(**recipe.model).input_dim == 128
    task = build_task(recipe_from_dict(tiny_flow_recipe(tiny_ckpt)))
    path = task.export().save(tmp_path / "flow")
    code = (f"import sys, speechtok; tok = speechtok.load({str(path)!r}); "
            "print(sorted(m for m in sys.modules if m.startswith(('speechtok.training', 'speechtok.eval'))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
