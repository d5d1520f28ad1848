"""The native SpeechTokenizer: the official release format loads 1:1 (parity with the `speechtokenizer` package on
a tiny random config), streams by name, batch invariance, distillation losses."""

import json
import warnings

import pytest
import torch

import speechtok
from speechtok.adapters.speechtokenizer_release import load_speechtokenizer_release
from speechtok.codecs.speechtokenizer import SpeechTokenizerConfig, teacher_losses
from speechtok.config import to_dict
from speechtok.errors import CheckpointError, CodesError
from speechtok.models import build_speechtokenizer, semantic_features

from .conftest import speech
from .test_whisper_units import needs_base

TINY = dict(n_filters=4, strides=[4, 2, 2], dimension=16, semantic_dimension=12, n_q=3, codebook_size=32,
            lstm_layers=1, bidirectional=True, dilation_base=2, residual_kernel_size=3, n_residual_layers=1,
            activation="ELU", sample_rate=16000)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny model built by the official package with random weights and codebooks, saved as the release is."""
    package = pytest.importorskip("speechtokenizer", reason="the speechtokenizer package is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = package.SpeechTokenizer({**TINY, "strides": list(TINY["strides"])}).eval()
    with torch.no_grad():
        for layer in model.quantizer.vq.layers:
            layer._codebook.embed.normal_()
            layer._codebook.inited.fill_(1.0)
            layer._codebook.cluster_size.uniform_(0.5, 2.0)
    folder = tmp_path_factory.mktemp("release")
    (folder / "config.json").write_text(json.dumps({**TINY, "num_gpus": 3, "learning_rate": 1e-4}))
    torch.save(model.state_dict(), folder / "SpeechTokenizer.pt")
    return model, folder


def test_release_loads_with_identical_codes_and_audio(release):
    model, folder = release
    tok = load_speechtokenizer_release(folder / "config.json", folder / "SpeechTokenizer.pt")
    clip = speech(1.6)
    wav = torch.stack([clip[:12800], clip[12800:]])[:, None]  # a multiple of the hop: no padding question
    with torch.no_grad():
        expected = model.encode(wav)  # [n_q, B, T]
        expected_audio = model.decode(expected)
    codes = tok.encode(wav, 16000)
    assert torch.equal(codes.codes, expected.permute(1, 0, 2))
    audio = tok.decode(codes)
    assert audio.shape == expected_audio.shape
    torch.testing.assert_close(audio, expected_audio, atol=1e-4, rtol=0)
    with torch.no_grad():  # layer 1's projection is the package's `transform` on layer 1's quantized output
        expected_feature = model(wav, layers=[0])[2]
    torch.testing.assert_close(semantic_features(tok, wav), expected_feature, atol=1e-5, rtol=1e-4)


def test_streams_travel_with_the_codes(release, tmp_path):
    _, folder = release
    tok = load_speechtokenizer_release(folder / "config.json", folder / "SpeechTokenizer.pt")
    codes = tok.encode(speech(0.5), 16000)
    assert torch.equal(codes.stream("semantic"), codes.codes[:, :1])
    assert torch.equal(codes.stream("acoustic"), codes.codes[:, 1:])
    reread = speechtok.Codes.load(codes.save(tmp_path / "x.npy"))
    assert torch.equal(reread.stream("acoustic"), codes.codes[:, 1:])
    plain = speechtok.load("speechtok-codec-16k").encode(speech(0.5), 16000)
    with pytest.raises(CodesError, match="no stream 'semantic'"):
        plain.stream("semantic")


def test_a_saved_checkpoint_reloads(release, tmp_path):
    _, folder = release
    tok = load_speechtokenizer_release(folder / "config.json", folder / "SpeechTokenizer.pt")
    again = speechtok.load(tok.save(tmp_path / "ckpt"))
    wav = speech(0.6)
    assert torch.equal(again.encode(wav, 16000).codes, tok.encode(wav, 16000).codes)
    assert again.streams == tok.streams


def test_batch_items_get_their_codes_alone():
    torch.manual_seed(0)
    tok = build_speechtokenizer(SpeechTokenizerConfig(**{**TINY, "strides": tuple(TINY["strides"])})).eval()
    clip = speech(1.3)
    long, short = clip[:12800], clip[12800:]
    batch = torch.zeros(2, 1, long.shape[-1])
    batch[0, 0], batch[1, 0, : short.shape[-1]] = long, short
    codes = tok.encode(batch, 16000, lengths=torch.tensor([long.shape[-1], short.shape[-1]]))
    alone = tok.encode(short, 16000)
    assert torch.equal(codes.item(1).codes, alone.codes)


def test_unsafe_or_foreign_checkpoints_are_refused(release, tmp_path):
    _, folder = release
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="speechtok convert"):
        load_speechtokenizer_release(folder / "config.json", tmp_path / "bad.pt")
    torch.save({"encoder.nothing": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a SpeechTokenizer state dict"):
        load_speechtokenizer_release(folder / "config.json", tmp_path / "other.pt")


def test_distillation_losses():
    torch.manual_seed(0)
    teacher = torch.randn(2, 10, 12)
    same = teacher_losses(teacher.clone(), teacher, t_axis=True)
    other = teacher_losses(torch.randn(2, 10, 12), teacher, t_axis=True)
    assert same["distill/d_axis"] < other["distill/d_axis"]
    assert same["distill/t_axis"] < other["distill/t_axis"]
    assert teacher_losses(torch.randn(2, 12, 12), teacher)["distill/d_axis"].isfinite()  # frames: the common ones
    assert to_dict(SpeechTokenizerConfig())["n_q"] == 8


def test_long_files_are_windowed_within_the_recurrent_bound():
    """DESIGN.md: recurrent encoders window long files and agree with one pass on at least 99% of frames."""
    torch.manual_seed(0)
    cfg = SpeechTokenizerConfig(**{**TINY, "strides": tuple(TINY["strides"]), "lstm_context_s": 0.4})
    tok = build_speechtokenizer(cfg).eval()
    wav = speech(4.0)
    whole = tok.encode(wav, 16000).codes
    tok.chunk_seconds = 1.0  # windows of 1 s with 0.4 s + the conv field of context on each side
    windowed = tok.encode(wav, 16000).codes
    assert windowed.shape == whole.shape
    agree = (windowed == whole).all(dim=1).float().mean().item()
    assert agree >= 0.99, agree


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return tiny_teacher(tmp_path_factory.mktemp("teacher") / "units")


def tiny_teacher(path, width: int = 12):
    """A tiny hubert-units checkpoint: the teacher's HuBERT (random weights: distillation only needs features)."""
    from speechtok.codecs.hubert import HubertConfig
    from speechtok.models import HubertUnitsConfig, build_hubert_units
    from speechtok.quantizers.kmeans import KMeansConfig

    hubert = HubertConfig(hidden_size=width, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * width,
                          conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    torch.manual_seed(0)
    kmeans = KMeansConfig(dim=width, codebook_size=8)
    return build_hubert_units(HubertUnitsConfig(hubert=hubert, layer=2, kmeans=kmeans)).save(path)


def hybrid_recipe(corpus, teacher, **train):
    from speechtok.vocoders.discriminators import DiscriminatorConfig

    return {"task": "speechtokenizer", "model": {**TINY, "strides": [8, 5, 8]},
            "task_config": {"teacher": str(teacher), "teacher_layers": [1, 2], "t_axis": True, "adversarial_start": 2,
                            "discriminator": to_dict(DiscriminatorConfig.tiny())},
            "data": {"sources": [str(corpus)], "segment_seconds": 0.4},
            "train": {"steps": 3, "batch_size": 2, "log_every": 1, "checkpoint_every": 3, **train},
            "optim": {"generator": {"lr": 3e-3}, "discriminator": {"lr": 1e-3}}}


def test_distillation_trains_and_exports_a_hybrid(corpus, teacher_dir, tmp_path):
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.trainer import Trainer

    trainer = Trainer(recipe_from_dict(hybrid_recipe(corpus, teacher_dir)), tmp_path / "run")
    trainer.fit()
    header, *rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert "distill/d_axis" in header and "distill/t_axis" in header and "gan/adv_d" in header
    assert len(rows) == 3 and "nan" not in "".join(rows)
    tok = speechtok.load(trainer.export().save(tmp_path / "ckpt"))
    codes = tok.encode(speech(0.64), 16000)
    assert codes.stream("semantic").shape == (1, 1, 32) and tok.decode(codes).shape[-1] == 10240


def test_distillation_trains_the_encoder_and_projection_not_the_decoder(corpus, teacher_dir):
    """Layer 1's straight-through output carries the distillation gradient into the encoder and the projection;
    the decoder gets none from it."""
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.trainer import build_task

    torch.manual_seed(0)
    task = build_task(recipe_from_dict(hybrid_recipe(corpus, teacher_dir)))
    _, _, losses = task.reconstruct(speech(0.8).reshape(2, 1, -1))
    losses["distill/d_axis"].backward()
    gen = task.generator
    assert gen.encoder.model[0].conv.conv.parametrizations.weight.original1.grad.abs().sum() > 0
    assert gen.semantic.transform.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in gen.decoder.parameters())


def test_a_hybrid_starts_from_one_distilled_towards_another_teacher(corpus, teacher_dir, tmp_path):
    """init_from across teachers of other widths: every weight but the semantic projection, which starts fresh."""
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.trainer import build_task

    torch.manual_seed(0)
    source = build_task(recipe_from_dict(hybrid_recipe(corpus, teacher_dir))).export().save(tmp_path / "src")
    recipe = hybrid_recipe(corpus, tiny_teacher(tmp_path / "t8", width=8))
    recipe["model"]["semantic_dimension"] = 8
    task = build_task(recipe_from_dict(recipe))
    fresh = task.generator.semantic.transform.weight.detach().clone()
    task.init_from(source)
    ours, theirs = task.export().state_dict(), speechtok.load(source).state_dict()
    assert {k for k in theirs if k.startswith("semantic.")}  # the projection is part of the weights
    for key, value in theirs.items():
        if key.startswith("semantic."):
            assert ours[key].shape != value.shape
        else:
            torch.testing.assert_close(ours[key], value, atol=1e-6, rtol=1e-5)
    assert torch.equal(task.generator.semantic.transform.weight, fresh)
    other = hybrid_recipe(corpus, teacher_dir)
    other["model"]["dimension"] = 20  # another model altogether
    with pytest.raises(ValueError, match="is not this recipe's model"):
        build_task(recipe_from_dict(other)).init_from(source)


def test_teacher_must_match_the_semantic_dimension(corpus, teacher_dir):
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.trainer import build_task

    recipe = hybrid_recipe(corpus, teacher_dir)
    recipe["model"]["semantic_dimension"] = 7
    with pytest.raises(ValueError, match="semantic_dimension is 7"):
        build_task(recipe_from_dict(recipe))


@needs_base
def test_whisper_base_as_the_teacher(corpus):
    """`teacher: whisper-base`: Whisper's encoder states (512 wide, 50 Hz) of each crop at its own length."""
    from speechtok.training.recipe import recipe_from_dict
    from speechtok.training.trainer import build_task

    recipe = hybrid_recipe(corpus, "whisper-base")
    recipe["model"]["semantic_dimension"] = 512
    recipe["task_config"]["teacher_layers"] = [4]
    task = build_task(recipe_from_dict(recipe))
    batch = speech(0.8).reshape(2, 1, -1)
    features = task.teacher_features(batch)
    assert features.shape == (2, 20, 512) and features.std() > 0.1  # 6400 samples: 20 frames of 320
    hidden = task.teacher(batch[:, 0], last_layer=6)
    assert len(hidden) == 7 and torch.equal(hidden[4], features)
    _, _, losses = task.reconstruct(batch)
    assert losses["distill/d_axis"].isfinite()
    with pytest.raises(ValueError, match="teacher_layers \\(7,\\) outside 0..6"):
        recipe["task_config"]["teacher_layers"] = [7]
        build_task(recipe_from_dict(recipe))
