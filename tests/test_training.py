"""The training loop on a tiny codec, on CPU: losses fall, checkpoints resume, export loads."""

import subprocess
import sys

import pytest
import torch
import yaml

import speechtok
from speechtok.config import to_dict
from speechtok.training.recipe import apply_overrides, load_recipe, recipe_from_dict
from speechtok.training.schedule import lr_factor
from speechtok.training.trainer import Trainer, build_task, load_run
from speechtok.vocoders.discriminators import DiscriminatorConfig

from .conftest import speech, tiny_config


def tiny_recipe(corpus, **train) -> dict:
    return {
        "task": "codec",
        "model": to_dict(tiny_config()),
        "task_config": {"adversarial_start": 2, "discriminator": to_dict(DiscriminatorConfig.tiny())},
        "data": {"sources": [str(corpus)], "segment_seconds": 0.2, "sample_rate": 16000},
        "train": {"steps": 4, "batch_size": 2, "log_every": 1, "checkpoint_every": 2, "warmup_steps": 1,
                  **train},
        "optim": {"generator": {"lr": 3e-3}, "discriminator": {"lr": 1e-3}},
    }


def test_losses_fall_on_a_fixed_batch(corpus):
    recipe = recipe_from_dict(tiny_recipe(corpus))
    torch.manual_seed(0)
    task = build_task(recipe)
    opt = torch.optim.AdamW(task.generator.parameters(), lr=3e-3)

    def update(group, loss):
        if group == "generator":
            opt.zero_grad()
            loss.backward()
            opt.step()

    batch = torch.stack([speech(0.4)[i * 3200 : (i + 1) * 3200] for i in range(2)])[:, None]
    mels = [task.step(batch, step=0, update=update)["gan/mel"] for _ in range(25)]
    assert all(torch.isfinite(torch.tensor(mels)))
    assert sum(mels[-5:]) / 5 < 0.8 * sum(mels[:5]) / 5, mels
    logs = task.step(batch, step=5, update=update)  # adversarial phase: every term is there and finite
    for key in ("gan/adv_d", "gan/adv_g", "gan/feature", "vq/commitment", "loss/generator"):
        assert key in logs and torch.isfinite(torch.tensor(logs[key]))


def test_fit_checkpoints_and_resume(corpus, tmp_path):
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(corpus)), run).fit()
    assert [p.name for p in sorted((run / "checkpoints").glob("*.pt"))] == ["step-00000002.pt", "step-00000004.pt"]
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,seconds,lr/generator") and len(rows) == 5
    assert "gan/adv_d" in rows[0]  # columns that joined at the adversarial start are in the header
    longer = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=6)), run)
    longer.fit()
    assert longer.step == 6 and len((run / "log.csv").read_text().splitlines()) == 7


def test_resume_equals_uninterrupted_run(corpus, tmp_path):
    """N steps, stop, resume for N more: the same weights as 2N steps in one go (bitwise on CPU)."""
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=6)), tmp_path / "a").fit(until=3)
    resumed = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=6)), tmp_path / "a")
    resumed.fit()
    straight = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=6)), tmp_path / "b")
    straight.fit()
    a, b = resumed.task.generator.state_dict(), straight.task.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log_a, log_b = ((tmp_path / d / "log.csv").read_text().splitlines() for d in "ab")
    assert [r.split(",")[2:] for r in log_a] == [r.split(",")[2:] for r in log_b]  # all but the timings


def test_training_leaves_the_process_random_streams_alone(corpus, tmp_path):
    """The trainer seeds and draws from its own streams: the caller's torch, numpy and Python streams go on as if
    no training had run, and two runs with one seed give the same weights whatever the caller's streams."""
    import random

    import numpy as np

    def draws():
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]

    weights = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        expected = draws()
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        trainer = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=3)), tmp_path / f"run{seed}")
        trainer.fit()
        assert draws() == expected
        weights.append(trainer.task.generator.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_export_then_load_and_encode(corpus, tmp_path):
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(corpus)), run).fit()
    out = load_run(run).task.export().save(tmp_path / "ckpt")
    tok = speechtok.load(out)
    codes = tok.encode(speech(1.0), 16000)
    assert codes.codes.shape == (1, 8, 50)
    assert tok.decode(codes).shape == (1, 1, 16000)


def test_train_and_export_cli(corpus, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(corpus)))
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "speechtok.cli"]
    res = subprocess.run([*cli, "train", recipe, "train.steps=2", "--run-dir", run], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([*cli, "export", run, "-o", tmp_path / "ckpt"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    res = subprocess.run([*cli, "train", tmp_path / "missing.yaml"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "missing.yaml" in res.stderr


def test_recipe_overrides_and_bundled_recipe():
    raw = apply_overrides({"train": {"steps": 1}}, ["train.steps=10", "model.encoder.channels=8", "x.y=[1, 2]"])
    assert raw == {"train": {"steps": 10}, "model": {"encoder": {"channels": 8}}, "x": {"y": [1, 2]}}
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["oops"])
    lr = apply_overrides({}, ["optim.g.lr=2e-4", "a.b=1E3", "a.c=e5", "a.d=2.5e-1"])  # YAML 1.1 reads 2e-4 as a str
    assert lr == {"optim": {"g": {"lr": 2e-4}}, "a": {"b": 1000.0, "c": "e5", "d": 0.25}}
    recipe = load_recipe("codec", ["train.steps=7"])
    assert recipe.task == "codec" and recipe.train.steps == 7
    task = build_task(recipe)  # the bundled recipe builds the default architecture
    assert task.generator.num_codebooks == 8 and task.generator.codebook_size == 1024
    assert task.generator.frame_rate == 50.0


def test_lr_schedule():
    assert lr_factor(0, 100, warmup=10) == pytest.approx(0.1)
    assert lr_factor(9, 100, warmup=10) == pytest.approx(1.0)
    assert lr_factor(10, 100, warmup=10, kind="cosine") == pytest.approx(1.0)
    assert lr_factor(100, 100, warmup=10, kind="cosine", min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(50, 100, kind="constant") == 1.0
    with pytest.raises(ValueError):
        lr_factor(50, 100, kind="nope")


def test_time_boxed_run_stops_with_a_checkpoint(corpus, tmp_path):
    """`train.max_minutes` ends a job early (a device call has a time limit); the next job resumes."""
    run = tmp_path / "run"
    trainer = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=50, max_minutes=1e-6)), run)
    trainer.fit()
    assert trainer.step == 1 and [p.name for p in (run / "checkpoints").glob("*.pt")] == ["step-00000001.pt"]
    again = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=3)), run)
    again.fit()
    assert again.step == 3


def test_a_new_run_starts_from_an_exported_checkpoint(corpus, tmp_path):
    """`train.init_from`: the weight-normed generator takes the folded weights of an inference checkpoint."""
    first = Trainer(recipe_from_dict(tiny_recipe(corpus)), tmp_path / "a")
    first.fit()
    exported = first.task.export().save(tmp_path / "ckpt")
    second = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=4, init_from=str(exported), seed=5)), tmp_path / "b")
    second.fit(until=0)
    wav = speech(1.0)
    want, got = speechtok.load(exported), second.task.export()
    assert torch.equal(want.encode(wav, 16000).codes, got.encode(wav, 16000).codes)
    torch.testing.assert_close(got.decode(got.encode(wav, 16000)), want.decode(want.encode(wav, 16000)),
                               atol=1e-5, rtol=1e-4)


def test_discriminator_warmup_trains_only_the_discriminators(corpus):
    """`task_config.discriminator_warmup`: the first steps of a job move the discriminators, and neither the
    generator's weights nor its codebooks (the RVQ's EMA would drift in train mode)."""
    raw = tiny_recipe(corpus)
    raw["task_config"]["discriminator_warmup"] = 3
    torch.manual_seed(0)
    task = build_task(recipe_from_dict(raw))
    batch = torch.stack([speech(0.4)[i * 3200 : (i + 1) * 3200] for i in range(2)])[:, None]
    with torch.no_grad():  # the codebooks' k-means init, as a generator from `train.init_from` has had
        task.generator.eval()
        task.reconstruct(batch)
    task.generator.train()
    before_g = {k: v.clone() for k, v in task.generator.state_dict().items()}
    before_d = {k: v.clone() for k, v in task.discriminator.state_dict().items()}
    opt = torch.optim.AdamW(task.discriminator.parameters(), lr=1e-3)
    groups = []

    def update(group, loss):
        groups.append(group)
        opt.zero_grad()
        loss.backward()
        opt.step()

    logs = task.step(batch, step=2, update=update)
    assert groups == ["discriminator"] and set(logs) == {"gan/adv_d"}
    assert all(torch.equal(v, before_g[k]) for k, v in task.generator.state_dict().items())
    assert any(not torch.equal(v, before_d[k]) for k, v in task.discriminator.state_dict().items())
    assert task.generator.training  # back in train mode for the steps after the warm-up
    task.step(batch, step=3, update=update)
    assert groups[1:] == ["discriminator", "generator"]  # past the warm-up: the usual adversarial step
    with pytest.raises(ValueError, match="discriminator_warmup"):
        raw["task_config"]["discriminator_warmup"] = -1
        build_task(recipe_from_dict(raw))


def test_complex_stft_term_is_computed_only_when_weighted(corpus):
    raw = tiny_recipe(corpus)
    batch = torch.stack([speech(0.4)[i * 3200 : (i + 1) * 3200] for i in range(2)])[:, None]
    off = build_task(recipe_from_dict(raw)).step(batch, step=0, update=lambda g, loss: None)
    assert "gan/complex_stft" not in off
    raw["task_config"]["loss_weights"] = {"gan/complex_stft": 5.0}
    task = build_task(recipe_from_dict(raw))
    totals = []
    on = task.step(batch, step=0, update=lambda g, loss: totals.append(loss))
    assert on["gan/complex_stft"] > 0
    expected = 15.0 * on["gan/mel"] + 5.0 * on["gan/complex_stft"] + on["vq/commitment"]
    assert on["loss/generator"] == pytest.approx(expected, rel=1e-5)
