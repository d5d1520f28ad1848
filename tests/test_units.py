"""The HuBERT-units tokenizer: [B, 1, T] codes at floor((T - 400) / 320) + 1 frames, batch invariance, checkpoint
round trip through speechtok.load, decode through the unit vocoder, de-duplication, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import speechtok
from speechtok.cli import main
from speechtok.codecs.hubert import HubertConfig, HubertEncoder
from speechtok.errors import AudioError, CodesError
from speechtok.lm.unit_runs import UnitRuns, deduplicate
from speechtok.models import HubertUnitsConfig, build_hubert_units
from speechtok.models.hubert_units import hubert_features, hubert_units_from
from speechtok.quantizers.kmeans import KMeansConfig, save_centroids
from speechtok.registry import bundled
from speechtok.tokenizer import Tokenizer
from speechtok.vocoders.gan import VocosConfig

from .conftest import speech

HUB = HubertConfig(conv_dim=(16,) * 7, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                   feat_extract_norm="group")
VOC = VocosConfig(input_dim=32, dim=32, intermediate_dim=64, num_layers=1, n_fft=1280, hop_length=320)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread



def tiny_units(vocoder: bool = True, k: int = 12) -> Tokenizer:
    torch.manual_seed(0)
    tok = build_hubert_units(HubertUnitsConfig(hubert=HUB, layer=2, kmeans=KMeansConfig(dim=32, codebook_size=k),
                                               vocoder=VOC if vocoder else None), name="tiny-units").eval()
    # centroids from the model's own features, so that units vary over time
    feats, _ = hubert_features(tok, speech(2.0), 16000)
    tok.quantizer.centroids.copy_(feats[0].T[torch.linspace(0, feats.shape[-1] - 1, k).long()])
    return tok


def test_encode_shapes_timing_and_identity():
    tok = tiny_units()
    assert (tok.sample_rate, tok.hop_length, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == \
        (16000, 320, 50.0, 1, 12)
    codes = tok.encode(speech(1.0), 16000)
    assert codes.codes.shape == (1, 1, (16000 - 400) // 320 + 1) and codes.offset == 40
    assert codes.codes.unique().numel() > 1
    assert torch.equal(tok.encode(speech(1.0), 16000).codes, codes.codes)  # deterministic
    with pytest.raises(AudioError, match="too short.*400"):
        tok.encode(torch.zeros(399), 16000)
    with pytest.raises(ValueError, match="n_q"):
        tok.encode(speech(1.0), 16000, n_q=2)


def test_padded_batch_matches_items_alone():
    """DESIGN.md bound for attention encoders: >= 99% of frames agree (here, with masking, all do)."""
    tok = tiny_units()
    a, b = speech(1.3), speech(0.7)
    batch = torch.zeros(2, 1, a.numel())
    batch[0, 0], batch[1, 0, : b.numel()] = a, b
    together = tok.encode(batch, 16000, lengths=torch.tensor([a.numel(), b.numel()]))
    for i, wav in enumerate((a, b)):
        alone = tok.encode(wav, 16000).codes[0, 0]
        got = together.codes[i, 0, : int(together.lengths[i])]
        assert got.shape == alone.shape
        assert (got == alone).float().mean() >= 0.99


def test_save_load_decode_and_dedup(tmp_path):
    tok = tiny_units()
    tok.save(tmp_path / "ckpt")
    back = speechtok.load(tmp_path / "ckpt")
    assert isinstance(back.encoder, HubertEncoder) and back.config == tok.config
    wav = speech(1.1)
    codes = back.encode(wav, 16000)
    assert torch.equal(codes.codes, tok.encode(wav, 16000).codes)
    out = back.decode(codes)
    assert out.shape == (1, 1, wav.numel()) and torch.isfinite(out).all()
    runs = deduplicate(codes)
    assert (runs.units[1:] != runs.units[:-1]).all() and int(runs.run_lengths.sum()) == codes.codes.shape[-1]
    runs.save(tmp_path / "u.safetensors")
    again = UnitRuns.load(tmp_path / "u.safetensors").to_codes()
    assert torch.equal(again.codes, codes.codes) and again.offset == 40
    assert torch.equal(back.decode(again), out)
    with pytest.raises(CodesError, match="no decoder"):
        tiny_units(vocoder=False).decode(codes.codes)


def test_from_user_checkpoints(tmp_path):
    """A Hugging Face HuBERT directory + .npy centroids -> the same units as the native model."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.HubertModel(transformers.HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)).eval()
    hf.save_pretrained(tmp_path / "hf")
    with torch.no_grad():
        feats = hf(speech(1.0)[None], output_hidden_states=True).hidden_states[1][0]  # [T, D]
    centroids = feats[::5].clone()
    np.save(tmp_path / "km.npy", centroids.numpy())
    tok = hubert_units_from(tmp_path / "hf", 1, tmp_path / "km.npy")
    expected = torch.cdist(feats, centroids).argmin(1)
    assert (tok.encode(speech(1.0), 16000).codes[0, 0] == expected).float().mean() >= 0.99
    save_centroids(centroids, tmp_path / "km.safetensors")
    tok2 = hubert_units_from(tmp_path / "hf", 1, tmp_path / "km.safetensors")
    assert torch.equal(tok2.quantizer.centroids, tok.quantizer.centroids)


def test_cli_encode_decode_and_dedup(tmp_path):
    tiny_units().save(tmp_path / "ckpt")
    sf.write(tmp_path / "a.wav", speech(1.0).numpy(), 16000)

    def run(*args):  # in-process: test_cli.py covers the subprocess path
        return main([str(a) for a in args])

    assert run("encode", tmp_path / "a.wav", "-o", tmp_path / "a.npy", "--model", tmp_path / "ckpt") == 0
    assert np.load(tmp_path / "a.npy").shape == (1, 49)
    assert run("decode", tmp_path / "a.npy", "-o", tmp_path / "a.out.wav") == 0
    assert sf.info(tmp_path / "a.out.wav").frames == 16000
    assert run("encode", tmp_path / "a.wav", "-o", tmp_path / "a.units.safetensors", "--model", tmp_path / "ckpt",
               "--dedup") == 0
    runs = UnitRuns.load(tmp_path / "a.units.safetensors")
    assert torch.equal(runs.expand(), torch.from_numpy(np.load(tmp_path / "a.npy")[0].astype(np.int64)))
    assert run("decode", tmp_path / "a.units.safetensors", "-o", tmp_path / "b.out.wav") == 0  # runs expanded
    np.testing.assert_array_equal(sf.read(tmp_path / "b.out.wav")[0], sf.read(tmp_path / "a.out.wav")[0])


BUNDLED = "speechtok-hubert-units"


@pytest.mark.skipif(BUNDLED not in bundled(), reason=f"{BUNDLED} is not bundled")
def test_bundled_units_tokenizer():
    path = bundled()[BUNDLED]
    card = (path / "README.md").read_text().lower()
    for needed in ("training data", "licence", "recipe", "ls-test", "so-test", "abx", "pesq-wb", "stoi"):
        assert needed in card, needed
    assert sum(f.stat().st_size for f in path.iterdir()) < 10 * 2**20  # HuBERT + unit vocoder within 10 MB
    tok = speechtok.load(BUNDLED)
    assert tok.family == "hubert-units" and tok.decoder is not None
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks) == (16000, 50.0, 1)
    codes = tok.encode(speech(2.0), 16000)
    assert codes.codes.shape == (1, 1, 99)
    assert codes.codes.unique().numel() >= 10  # trained units change with the speech
    assert tok.decode(codes).shape == (1, 1, 32000)


def test_latent_features_of_hubert_keep_its_offset():
    """ABX on the encoder's continuous output (`--features latent`): HuBERT's frames start 40 samples in."""
    from speechtok.eval.features import latent_features

    feats = latent_features(tiny_units(vocoder=False), speech(1.0).numpy(), 16000)
    assert feats.offset == 40 and feats.num_frames == (16000 - 400) // 320 + 1
    with pytest.raises(ValueError, match="takes no steps"):
        tiny_units().decode(torch.zeros(1, 1, 5, dtype=torch.long), steps=4)
