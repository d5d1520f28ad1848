"""HuBERT pre-training and the unit vocoder on tiny configs, on CPU: MFCC targets on HuBERT's frame grid, span
masks, losses fall, iteration 2 on units, the common loop runs both tasks, exports load."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.fft import dct

import speechtok
from speechtok.cli import main
from speechtok.codecs.hubert import HubertEncoder
from speechtok.config import to_dict
from speechtok.models import hubert_features
from speechtok.models.whisper_units import build_whisper_units
from speechtok.quantizers.kmeans import fit_kmeans, save_centroids
from speechtok.training.recipe import load_recipe, recipe_from_dict
from speechtok.training.targets import MFCC, dct_matrix
from speechtok.training.tasks.hubert import span_mask
from speechtok.training.trainer import Trainer, build_task
from speechtok.vocoders.discriminators import DiscriminatorConfig

from .conftest import speech
from .test_whisper_units import SMALL

TINY_HUBERT = {"conv_dim": [16] * 7, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}
TINY_VOCODER = {"input_dim": 32, "dim": 32, "intermediate_dim": 64, "num_layers": 1, "n_fft": 1280,
                "hop_length": 320}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    clip = speech(6.0).numpy()
    for i in range(4):
        sf.write(root / f"utt{i}.wav", clip[i * 16000 : (i + 2) * 16000], 16000)
    mfcc = MFCC()(torch.from_numpy(clip)[None, None])[0].T  # [T', 39]
    save_centroids(fit_kmeans(mfcc, 8, steps=20, progress=False), root / "mfcc_km8.safetensors")
    return root


def hubert_recipe(corpus, targets=None, **train) -> dict:
    return {
        "task": "hubert", "model": TINY_HUBERT,
        "task_config": {"targets": targets or {"kind": "mfcc", "kmeans": str(corpus / "mfcc_km8.safetensors")},
                        "export_layer": 1, "mask_prob": 0.5, "mask_length": 4},
        "data": {"sources": [str(corpus)], "segment_seconds": 0.5, "sample_rate": 16000},
        "train": {"steps": 2, "batch_size": 2, "log_every": 1, "checkpoint_every": 2, **train},
        "optim": {"hubert": {"lr": 3e-3}},
    }


def fixed_batch() -> torch.Tensor:
    return torch.stack([speech(1.6)[i * 8000 : (i + 1) * 8000] for i in range(3)])[:, None]  # [3, 1, 0.5 s]


def sgd(module):
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)

    def update(group, loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    return update


def test_mfcc_on_hubert_grid():
    assert torch.allclose(dct_matrix(13, 40), torch.from_numpy(dct(np.eye(40), type=2, norm="ortho", axis=0)[:13])
                          .float(), atol=1e-6)
    feats = MFCC()(speech(1.0)[None, None])
    assert feats.shape == (1, 39, (16000 - 400) // 320 + 1)
    assert torch.allclose(feats.mean(-1), torch.zeros(1, 39), atol=1e-4)  # CMVN


def test_span_mask_deterministic():
    a = span_mask(3, 100, 0.8, 10, torch.Generator().manual_seed(1))
    b = span_mask(3, 100, 0.8, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and 0.3 < a.float().mean() < 0.8
    assert span_mask(1, 5, 0.8, 10, torch.Generator().manual_seed(0)).all()  # a span no longer than the input


def test_hubert_loss_falls_and_export_loads(corpus, tmp_path):
    torch.manual_seed(0)
    task = build_task(recipe_from_dict(hubert_recipe(corpus)))
    update, batch = sgd(task.net), fixed_batch()
    losses = [task.step(batch, step=0, update=update)["hubert/masked_ce"] for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    tok = speechtok.load(task.export().save(tmp_path / "ckpt"))
    assert isinstance(tok.encoder, HubertEncoder) and tok.encoder.layer == 1
    feats, frames = hubert_features(tok, speech(1.0), 16000)
    expected = task.net["hubert"].eval()(speech(1.0)[None])[1]
    assert torch.allclose(feats[0].T, expected[0], atol=1e-5) and int(frames) == 49


def test_iteration_two_on_units_through_the_loop(corpus, tmp_path):
    """Iteration 1 through the Trainer, k-means of its layer-1 features (`speechtok kmeans`), iteration 2 on
    those units through the Trainer again."""
    Trainer(recipe_from_dict(hubert_recipe(corpus)), tmp_path / "it1").fit()
    first = build_task(recipe_from_dict(hubert_recipe(corpus)))
    Trainer(recipe_from_dict(hubert_recipe(corpus)), tmp_path / "it1").resume()
    first.export().save(tmp_path / "it1-export")
    assert main(["-q", "kmeans", str(tmp_path / "it1-export"), "--data", str(corpus), "--split", "-k", "6",
                 "--steps", "5", "-o", str(tmp_path / "km6.safetensors"),
                 "--tokenizer-out", str(tmp_path / "it1-k6")]) == 0
    units = speechtok.load(tmp_path / "it1-k6")
    assert units.codebook_size == 6 and units.decoder is None
    run = Trainer(recipe_from_dict(hubert_recipe(corpus, {"kind": "units", "model": str(tmp_path / "it1-k6")})),
                  tmp_path / "it2")
    run.fit()
    assert run.step == 2 and (tmp_path / "it2" / "log.csv").read_text().count("\n") == 3


def vocoder_recipe(corpus, units_dir, **train) -> dict:
    return {
        "task": "unit_vocoder", "model": TINY_VOCODER,
        "task_config": {"units": str(units_dir), "adversarial_start": 2,
                        "discriminator": to_dict(DiscriminatorConfig.tiny())},
        "data": {"sources": [str(corpus)], "segment_seconds": 0.5, "sample_rate": 16000},
        "train": {"steps": 3, "batch_size": 2, "log_every": 1, "checkpoint_every": 3, **train},
        "optim": {"generator": {"lr": 3e-3}, "discriminator": {"lr": 1e-3}},
    }


def test_unit_vocoder_learns_and_decodes(corpus, tmp_path):
    torch.manual_seed(0)
    hub = build_task(recipe_from_dict(hubert_recipe(corpus)))
    hub.export().save(tmp_path / "exp")
    assert main(["-q", "kmeans", str(tmp_path / "exp"), "--data", str(corpus), "--split", "-k", "8", "--steps", "5",
                 "-o", str(tmp_path / "km.safetensors"), "--tokenizer-out", str(tmp_path / "units")]) == 0
    task = build_task(recipe_from_dict(vocoder_recipe(corpus, tmp_path / "units")))
    update, batch = sgd(task.generator), fixed_batch()
    mels = [task.step(batch, step=0, update=update)["gan/mel"] for _ in range(20)]
    assert sum(mels[-4:]) / 4 < 0.8 * sum(mels[:4]) / 4, mels
    logs = task.step(batch, step=5, update=lambda g, loss: None)  # the adversarial phase: every term finite
    assert all(np.isfinite(logs[k]) for k in ("gan/adv_d", "gan/adv_g", "gan/feature", "loss/generator"))
    Trainer(recipe_from_dict(vocoder_recipe(corpus, tmp_path / "units")), tmp_path / "voc").fit()
    tok = speechtok.load(task.export().save(tmp_path / "full"))
    codes = tok.encode(speech(1.0), 16000)
    assert torch.equal(codes.codes, speechtok.load(tmp_path / "units").encode(speech(1.0), 16000).codes)
    assert tok.decode(codes).shape == (1, 1, 16000)
    fresh = build_task(recipe_from_dict(vocoder_recipe(corpus, tmp_path / "units")))  # the next iteration's start
    fresh.init_from(tmp_path / "full")
    torch.testing.assert_close(fresh.generator(fresh.unit_latents(fixed_batch())),
                               tok.decoder(task.unit_latents(fixed_batch())), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="no unit vocoder"):
        fresh.init_from(tmp_path / "units")


def test_bundled_recipes_build(tmp_path):
    recipe = load_recipe("hubert")
    assert recipe.task == "hubert" and recipe.model["hidden_size"] == 192
    assert load_recipe("unit_vocoder").task == "unit_vocoder"


def test_hubert_validation_is_masked_prediction(corpus):
    from speechtok.training.validation import ValidationConfig

    task = build_task(recipe_from_dict(hubert_recipe(corpus)))
    subset = [("a", speech(1.0)), ("b", speech(0.6))]
    first = task.validate(subset, ValidationConfig(every=1), torch.device("cpu"))
    assert set(first.metrics) == {"val/masked_ce", "val/masked_acc"} and first.samples == {}
    assert first.metrics == task.validate(subset, ValidationConfig(every=1), torch.device("cpu")).metrics


def test_unmasked_weight_adds_the_unmasked_frames(corpus):
    raw = hubert_recipe(corpus)
    raw["task_config"]["unmasked_weight"] = 0.5
    task = build_task(recipe_from_dict(raw))
    seen = []
    logs = task.step(fixed_batch(), step=0, update=lambda group, loss: seen.append(loss.item()))
    assert seen[0] == pytest.approx(logs["hubert/masked_ce"] + 0.5 * logs["hubert/unmasked_ce"], rel=1e-5)


def test_iteration_two_starts_from_iteration_one(corpus, tmp_path):
    """`train.init_from` an exported HuBERT: the encoder starts with its weights (same features), the head is new;
    a checkpoint of another model config is refused."""
    Trainer(recipe_from_dict(hubert_recipe(corpus)), tmp_path / "it1").fit()
    first = build_task(recipe_from_dict(hubert_recipe(corpus)))
    Trainer(recipe_from_dict(hubert_recipe(corpus)), tmp_path / "it1").resume()
    first.export().save(tmp_path / "it1-export")
    second = build_task(recipe_from_dict(hubert_recipe(corpus)))
    wav = fixed_batch()[:, 0]
    assert not torch.allclose(second.net["hubert"](wav)[-1], first.net["hubert"](wav)[-1])
    second.init_from(tmp_path / "it1-export")
    torch.testing.assert_close(second.net["hubert"](wav)[-1], first.net["hubert"](wav)[-1], atol=1e-5, rtol=0)
    other = dict(hubert_recipe(corpus), model={**TINY_HUBERT, "num_hidden_layers": 1})
    with pytest.raises(ValueError, match="not a HuBERT of this recipe"):
        build_task(recipe_from_dict(other)).init_from(tmp_path / "it1-export")


def test_speaker_perturbation_changes_what_the_student_hears_not_the_targets(corpus):
    raw = hubert_recipe(corpus)
    raw["task_config"]["perturb_prob"] = 1.0
    task = build_task(recipe_from_dict(raw))
    heard, targeted = [], []
    task.net["hubert"].register_forward_pre_hook(lambda module, args: heard.append(args[0].clone()))
    task.targets.register_forward_pre_hook(lambda module, args: targeted.append(args[0].clone()))
    batch = fixed_batch()
    task.step(batch, step=0, update=lambda group, loss: None)
    assert torch.equal(targeted[0], batch)
    assert heard[0].shape == batch[:, 0].shape and not torch.allclose(heard[0], batch[:, 0], atol=1e-3)
    for bad in ({"perturb_prob": 1.5}, {"perturb_max_ratio": 0.8}):
        raw["task_config"].update({"perturb_prob": 0.5, "perturb_max_ratio": 1.2, **bad})
        with pytest.raises(ValueError, match="perturb_prob must be in"):
            build_task(recipe_from_dict(raw))


def small_whisper_units(path, seed: int = 0):
    """A whisper-units checkpoint of a small random Whisper (its weights in the checkpoint) and random centroids,
    saved at `path`."""
    torch.manual_seed(seed)
    units = build_whisper_units(SMALL, name="whisper-units-small")
    units.quantizer.centroids.normal_()
    units.save(path)
    return units


@pytest.fixture(scope="module")
def whole_file_units(corpus, tmp_path_factory):
    """(the small whisper-units, its checkpoint, its units of every corpus file: a pre-tokenized dataset)"""
    root = tmp_path_factory.mktemp("whisper-units")
    units = small_whisper_units(root / "units")
    speechtok.pretokenize(root / "units", corpus, root / "unit-codes", num_workers=0)
    return units, root / "units", root / "unit-codes"


def test_a_unit_vocoder_learns_whisper_units(corpus, tmp_path):
    """The same task over a whisper-units checkpoint (a small random Whisper, its weights in the checkpoint)."""
    small_whisper_units(tmp_path / "units")
    recipe = vocoder_recipe(corpus, tmp_path / "units")
    recipe["model"] = {**TINY_VOCODER, "input_dim": SMALL.whisper.width}
    task = build_task(recipe_from_dict(recipe))
    update, batch = sgd(task.generator), fixed_batch()
    mels = [task.step(batch, step=0, update=update)["gan/mel"] for _ in range(10)]
    assert sum(mels[-3:]) / 3 < sum(mels[:3]) / 3, mels
    tok = speechtok.load(task.export().save(tmp_path / "full"))
    assert tok.family == "whisper-units" and tok.decode(tok.encode(speech(1.0), 16000)).shape == (1, 1, 16000)


def test_a_unit_vocoder_trains_on_the_units_of_whole_files(corpus, whole_file_units, tmp_path):
    """`task_config.unit_codes`: each crop comes with its file's units at the same frames (Whisper's units of a
    crop depend on the file around it), from a pre-tokenized dataset of the units model, none computed per step."""
    from speechtok.audio import load
    from speechtok.errors import ArgumentError
    from speechtok.training.data import crop_offset

    units, units_dir, unit_codes = whole_file_units
    recipe = vocoder_recipe(corpus, units_dir, grad_accum=2)
    recipe["model"] = {**TINY_VOCODER, "input_dim": SMALL.whisper.width, "embed_kernel_size": 1}
    recipe["task_config"]["unit_codes"] = str(unit_codes)
    task = build_task(recipe_from_dict(recipe))
    data = recipe_from_dict(recipe).data
    ds = task.dataset(data, seed=0)
    frames = 8000 // 320
    for i, item in enumerate(ds.items):
        wav, crop_units = ds[(3, i)]
        whole = load(item.path, 16000)
        file_units = units.encode(whole, 16000).codes[0, 0]
        start = crop_offset(len(file_units), frames, 0, 3, i)
        assert wav.shape == (1, frames * 320) and crop_units.shape == (frames,)
        assert torch.equal(crop_units, file_units[start:start + frames])
        torch.testing.assert_close(wav[0], whole[0, 0, start * 320:(start + frames) * 320], atol=1 / 32768, rtol=0)
    run = Trainer(recipe_from_dict(recipe), tmp_path / "voc")  # through the adversarial phase, 2 micro-batches
    run.fit()
    assert run.step == 3 and "gan/adv_d" in (tmp_path / "voc" / "log.csv").read_text()
    assert sum(p.numel() for p in task.generator.embed.parameters()) == SMALL.whisper.width * 32 + 32
    small_whisper_units(tmp_path / "other", seed=1)  # another model: other units
    recipe["task_config"]["units"] = str(tmp_path / "other")
    with pytest.raises(ArgumentError, match="units of another tokenizer"):
        build_task(recipe_from_dict(recipe)).dataset(data, seed=0)
    sf.write(corpus / "late.wav", speech(1.0).numpy(), 16000)  # added after the units were made
    try:
        recipe["task_config"]["units"] = str(units_dir)
        with pytest.raises(ArgumentError, match="1 of 5 training items have no units"):
            build_task(recipe_from_dict(recipe)).dataset(recipe_from_dict(recipe).data, seed=0)
    finally:
        (corpus / "late.wav").unlink()


def test_hubert_learns_the_units_of_whole_files(corpus, whole_file_units, tmp_path):
    """`targets.kind: unit_codes`: Whisper units of each whole file (a pre-tokenized dataset), moved onto HuBERT's
    grid (HuBERT frame i is centred on 320 i + 200, Whisper's frame i + 1 on 320 i + 320: the nearest)."""
    from speechtok.audio import load
    from speechtok.training.data import crop_offset
    from speechtok.training.targets import GridUnits

    units, units_dir, unit_codes = whole_file_units
    targets = {"kind": "unit_codes", "model": str(units_dir), "codes": str(unit_codes)}
    recipe = recipe_from_dict(hubert_recipe(corpus, targets))
    task = build_task(recipe)
    assert task.targets.shift == 1 and task.net["head"].out_features == 16
    assert GridUnits(100, 320, frame_offset=40).shift == 0  # HuBERT's own units stay where they are
    ds = task.dataset(recipe.data, seed=0)
    wav, crop_units = ds[(2, 1)]
    _, target = task.frame_targets((wav[None], crop_units[None]))
    file_units = units.encode(load(ds.items[1].path, 16000), 16000).codes[0, 0]
    start = crop_offset(len(file_units), 25, 0, 2, 1)
    assert target.shape == (1, 24) and torch.equal(target[0], file_units[start + 1:start + 25])
    run = Trainer(recipe, tmp_path / "hub")
    run.fit()
    assert run.step == 2
    from speechtok.training.validation import ValidationConfig

    result = task.validate([("a", speech(1.0))], ValidationConfig(every=1), torch.device("cpu"))
    assert 0 < result.metrics["val/masked_ce"] < 10
    with pytest.raises(ValueError, match="needs codes"):
        build_task(recipe_from_dict(hubert_recipe(corpus, {"kind": "unit_codes", "model": str(units_dir)})))


def test_units_made_before_the_vocoder_still_fit_it(corpus, whole_file_units, tmp_path):
    """A unit vocoder does not change the units: codes and pre-tokenized datasets of the encode-only checkpoint
    are decoded by, and train, the checkpoint that adds the vocoder; another k-means's are still refused."""
    from speechtok.errors import CodesError
    from speechtok.training.unit_crops import read_units

    units, units_dir, unit_codes = whole_file_units
    recipe = vocoder_recipe(corpus, units_dir)
    recipe["model"] = {**TINY_VOCODER, "input_dim": SMALL.whisper.width}
    full = build_task(recipe_from_dict(recipe)).export()
    assert full.config_hash != units.config_hash and full.units_hash == units.config_hash
    codes = units.encode(speech(1.0), 16000)
    assert full.decode(codes).shape == (1, 1, 16000)
    assert len(read_units(unit_codes, full)) == 4
    other = small_whisper_units(tmp_path / "other", seed=1)
    with pytest.raises(CodesError, match="other weights"):
        full.decode(other.encode(speech(1.0), 16000))
