"""The training loop's scale features on CPU: gradient accumulation, mixed precision, EMA, validation, exact
resume of all of them, and data-parallel training under torchrun with gloo."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from torch import nn

from speechtok.training.ema import EMA
from speechtok.training.recipe import recipe_from_dict
from speechtok.training.tasks import TASKS
from speechtok.training.tasks.base import Task
from speechtok.training.trainer import Trainer, load_run

from .test_training import tiny_recipe


class LinearTask(Task):
    """A linear map trained to reproduce its input: a loss that is a plain mean over the batch, so a batch and
    its micro-batches must give the same update."""

    def __init__(self, model, task_config):
        torch.manual_seed(0)
        self.generator = nn.Conv1d(1, 1, 9, padding=4)

    def modules(self):
        return {"generator": self.generator}

    def step(self, batch, step, update):
        loss = (self.generator(batch) - batch).square().mean()
        update("generator", loss)
        return {"loss": loss.item()}

    def export(self):
        raise NotImplementedError


def linear_recipe(corpus, **train):
    return {"task": "linear", "data": {"sources": [str(corpus)], "segment_seconds": 0.1},
            "train": {"steps": 3, "batch_size": 4, "log_every": 1, "checkpoint_every": 10, **train},
            "optim": {"generator": {"lr": 1e-2, "grad_clip": 0.5}}}


def test_gradient_accumulation_equals_the_whole_batch(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "linear", LinearTask)
    whole = Trainer(recipe_from_dict(linear_recipe(corpus)), tmp_path / "whole")
    whole.fit()
    split = Trainer(recipe_from_dict(linear_recipe(corpus, grad_accum=4)), tmp_path / "split")
    split.fit()
    for a, b in zip(whole.task.generator.parameters(), split.task.generator.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(whole.task.generator.weight, LinearTask(None, None).generator.weight)  # it trained


def test_batch_must_split_into_micro_batches(corpus):
    with pytest.raises(ValueError, match="multiple of train.grad_accum"):
        recipe_from_dict(tiny_recipe(corpus, batch_size=3, grad_accum=2))


def test_ema_follows_the_formula():
    module = nn.Linear(2, 2)
    ema = EMA(module, decay=0.9, start=1)
    first = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module, step=0)  # before `start`: a copy
    torch.testing.assert_close(ema.shadow["weight"], first + 1.0)
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module, step=1)
    torch.testing.assert_close(ema.shadow["weight"], 0.9 * (first + 1.0) + 0.1 * (first + 2.0))
    with pytest.raises(ValueError):
        EMA(module, decay=1.0)


@pytest.mark.parametrize("train", [
    {"precision": "fp16", "grad_accum": 2, "ema_decay": 0.9},  # loss scaler, micro-batches and EMA resume too
    {"precision": "bf16"},
])
def test_mixed_precision_resumes_exactly(corpus, tmp_path, train):
    """N steps + resume + N steps = 2N steps, bitwise on CPU, with the loss scaler and EMA in the checkpoint."""
    recipe = recipe_from_dict(tiny_recipe(corpus, steps=4, **train))
    Trainer(recipe, tmp_path / "a").fit(until=2)
    resumed = Trainer(recipe, tmp_path / "a")
    resumed.fit()
    straight = Trainer(recipe, tmp_path / "b")
    straight.fit()
    for x, y in [(resumed.task.generator.state_dict(), straight.task.generator.state_dict()),
                 (resumed.state()["ema"], straight.state()["ema"])]:
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    if train["precision"] == "fp16":
        assert resumed.state()["scaler"]["scale"] == straight.state()["scaler"]["scale"]
    rows = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert len(rows) == 5 and "nan" not in "".join(rows[1:])


def test_export_uses_the_ema_weights(corpus, tmp_path):
    trainer = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=3, ema_decay=0.5)), tmp_path / "run")
    trainer.fit()
    averaged, last = trainer.export(), trainer.export(use_ema=False)
    live = trainer.task.generator.state_dict()
    assert any(not torch.equal(a, b) for a, b in zip(averaged.state_dict().values(), last.state_dict().values()))
    assert all(torch.equal(live[k], v) for k, v in trainer.state()["modules"]["generator"].items())  # restored
    reloaded = load_run(tmp_path / "run").export()
    assert all(torch.equal(a, b) for a, b in zip(averaged.state_dict().values(), reloaded.state_dict().values()))


def test_validation_writes_metrics_and_samples(corpus, tmp_path):
    recipe = tiny_recipe(corpus, steps=4)
    recipe["validation"] = {"every": 2, "num_items": 2, "max_seconds": 0.5, "samples": 1,
                            "metrics": ["mel", "stoi"]}
    run = tmp_path / "run"
    Trainer(recipe_from_dict(recipe), run).fit()
    rows = (run / "validation.csv").read_text().splitlines()
    health = "train/vq/resets_per_step,train/vq/usage,train/vq/perplexity"  # the codebooks, over the last 2 steps
    assert rows[0] == f"step,train_seconds,val/mel,val/stoi,{health}"
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    values = [[float(v) for v in r.split(",")] for r in rows[1:]]
    assert all(0 < mel < 10 and 0 < usage <= 1 and perplexity >= 1 for _, _, mel, _, _, usage, perplexity in values)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["reference", "step-00000002", "step-00000004"]
    assert len(list((run / "samples" / "step-00000004").glob("*.wav"))) == 1


def test_validation_needs_dev_audio(corpus, tmp_path):
    recipe = tiny_recipe(corpus)
    recipe["validation"] = {"every": 1, "sources": [str(tmp_path / "empty.tsv")]}
    (tmp_path / "empty.tsv").write_text("path\tsplit\n")
    with pytest.raises(ValueError, match="no dev audio"):
        Trainer(recipe_from_dict(recipe), tmp_path / "run").fit()


WORKER = textwrap.dedent("""
    import sys, torch, yaml
    from speechtok.training import distributed
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.trainer import Trainer

    recipe, run = sys.argv[1], sys.argv[2]
    trainer = Trainer(recipe_from_dict(yaml.safe_load(open(recipe))), run)
    trainer.fit()
    state = {name: m.state_dict() for name, m in trainer.task.modules().items()}
    torch.save(state, f"{run}/rank{trainer.dist.rank}.pt")
    distributed.teardown()
""")


def test_two_processes_with_gloo_stay_in_sync(corpus, tmp_path):
    """torchrun, 2 CPU ranks with different data: after GAN steps every weight and buffer (RVQ codebooks too)
    is identical on both ranks, and rank 0 alone wrote the log and the checkpoints."""
    recipe = tiny_recipe(corpus, steps=3, checkpoint_every=3, check_sync_every=1, threads=1)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "worker.py").write_text(WORKER)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(tmp_path / "worker.py"), str(tmp_path / "recipe.yaml"), str(run)],
                         capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name in ranks[0]:
        a, b = ranks[0][name], ranks[1][name]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    single = Trainer(recipe_from_dict(tiny_recipe(corpus, steps=3)), tmp_path / "single")
    single.fit()  # one process sees other batches: the 2-rank weights are not a copy of it
    assert not torch.equal(single.task.generator.state_dict()["decoder.head.weight"],
                           ranks[0]["generator"]["decoder.head.weight"])
    assert len((run / "log.csv").read_text().splitlines()) == 4
    assert [p.name for p in (run / "checkpoints").glob("*.pt")] == ["step-00000003.pt"]


def test_every_bundled_recipe_parses_and_names_a_task():
    """One recipe per family (codec, codec_fsq, hubert, unit vocoder, speechtokenizer, flow): each parses, names a
    known task, and its model section (when it has one) is a valid config of its family."""
    from speechtok.config import from_dict
    from speechtok.models import FAMILIES
    from speechtok.training.recipe import RECIPES_DIR, load_recipe

    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    assert {"codec", "hubert", "unit_vocoder", "speechtokenizer"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.task in TASKS, name
        family = getattr(TASKS[recipe.task], "family", None)
        if family is not None:
            from_dict(FAMILIES[family].config_cls, recipe.model)
