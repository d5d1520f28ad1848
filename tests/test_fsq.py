"""Residual FSQ: the quantizer contract (codes in range, nested, decode(encode) = the eval forward), and the codec
with `quantizer: {kind: fsq}` (config round trip, checkpoint, batch invariance, training step)."""

import json
from pathlib import Path

import pytest
import torch

import speechtok
from speechtok.config import config_hash, from_dict, to_dict
from speechtok.models import CodecConfig, build_codec
from speechtok.quantizers.fsq import FSQ, FSQConfig
from speechtok.training.recipe import load_recipe, recipe_from_dict
from speechtok.training.trainer import build_task
from speechtok.vocoders.discriminators import DiscriminatorConfig

from .conftest import speech, tiny_config
from .ties import assert_latents_agree, fsq_encode_with_rounded_values, fsq_real_disagreements

BUNDLED = Path(speechtok.__file__).parent / "pretrained" / "speechtok-codec-16k" / "config.json"


def tiny_fsq_config() -> CodecConfig:
    """The tiny codec of conftest with FSQ: 8 codebooks of levels (4, 4, 4) = 64 codes, as its RVQ's 8 x 64."""
    cfg = to_dict(tiny_config())
    cfg["quantizer"] = {"kind": "fsq", "dim": 8, "levels": [4, 4, 4], "num_codebooks": 8}
    return from_dict(CodecConfig, cfg)


def test_codes_in_range_nested_and_decodable():
    torch.manual_seed(0)
    q = FSQ(FSQConfig(dim=16, levels=(8, 5, 5, 5), num_codebooks=4)).eval()
    z = torch.randn(3, 16, 11)
    codes = q.encode(z)
    assert q.codebook_size == 1000 and codes.shape == (3, 4, 11) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < 1000
    assert codes.unique().numel() > 20  # real codes, not one repeated index
    out = q(z)
    assert torch.equal(out.codes, codes) and out.losses == {}
    torch.testing.assert_close(q.decode(codes), out.z_q)
    assert torch.equal(q.encode(z, n_q=2), codes[:, :2])  # the first q codes are the q-codebook encoding
    # fewer codebooks: a coarser reconstruction of the same latents, every residual layer refines it
    errs = [(q.decode(codes[:, :n]) - q.decode(codes)).norm().item() for n in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2] > 0
    with pytest.raises(ValueError, match="n_q=5"):
        q.encode(z, n_q=5)


def test_quantizer_dropout_only_in_training():
    torch.manual_seed(0)
    q = FSQ(FSQConfig(dim=8, levels=(4, 4), num_codebooks=6))
    z = torch.randn(2, 8, 5, requires_grad=True)
    dropped = [bool((q(z).codes == -1).any()) for _ in range(20)]
    assert any(dropped)  # some training forwards stop early: -1 marks dropped codebooks
    q.eval()
    assert not (q(z).codes == -1).any() and torch.equal(q.encode(z), q.encode(z))
    assert q.training is False


def test_gradients_flow_through_the_quantizer():
    q = FSQ(FSQConfig(dim=8, levels=(4, 4, 4), num_codebooks=2, quantizer_dropout=False))
    z = torch.randn(2, 8, 5, requires_grad=True)
    q(z).z_q.square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # straight-through rounding


def test_codec_config_switch_keeps_rvq_configs_and_hashes():
    meta = json.loads(BUNDLED.read_text())
    cfg = from_dict(CodecConfig, meta["config"])  # no `kind`: RVQ, as every config.json before FSQ
    assert type(cfg.quantizer).__name__ == "RVQConfig" and config_hash(cfg) == meta["config_hash"]
    explicit = dict(meta["config"], quantizer={**meta["config"]["quantizer"], "kind": "rvq"})
    assert from_dict(CodecConfig, explicit) == cfg
    fsq = tiny_fsq_config()
    assert isinstance(fsq.quantizer, FSQConfig) and from_dict(CodecConfig, to_dict(fsq)) == fsq
    with pytest.raises(ValueError, match="unknown quantizer kind 'pq'"):
        from_dict(CodecConfig, dict(to_dict(fsq), quantizer={"kind": "pq", "dim": 8}))
    with pytest.raises(ValueError, match="levels >= 3"):
        FSQConfig(levels=(2, 4))


def test_fsq_codec_bits_checkpoint_and_batch_invariance(tmp_path):
    torch.manual_seed(0)
    tok = build_codec(tiny_fsq_config(), name="tiny-fsq").eval()
    rvq = build_codec(tiny_config())
    assert (tok.num_codebooks, tok.codebook_size, tok.bitrate) == (rvq.num_codebooks, rvq.codebook_size, rvq.bitrate)
    wav = speech(1.0)
    codes = tok.encode(wav, 16000)
    loaded = speechtok.load(tok.save(tmp_path / "fsq"))
    assert isinstance(loaded.quantizer, FSQ)
    assert torch.equal(loaded.encode(wav, 16000).codes, codes.codes)
    torch.testing.assert_close(loaded.decode(codes), tok.decode(codes))
    # An item of a padded batch gets the codes it gets alone, but where a value FSQ rounds sits on a rounding
    # boundary within the two paths' float rounding (a near-tie, which kernels and batch shapes decide): each flip
    # must be one, with both paths' codes recomputed from the latents each path quantized.
    lens = [16000, 11001, 5000]
    batch = torch.randn(len(lens), 1, max(lens))
    for i, n in enumerate(lens):
        batch[i, 0, :n] = wav[:n]
    together = tok.encode(batch, 16000, lengths=torch.tensor(lens)).codes
    z_together = tok.encode_latents(batch, 16000, lengths=torch.tensor(lens))
    codes_together, rounded_together = fsq_encode_with_rounded_values(tok, z_together)
    assert torch.equal(codes_together, together)
    for i, n in enumerate(lens):
        z_alone = tok.encode_latents(batch[i, :, :n], 16000)
        alone, rounded_alone = fsq_encode_with_rounded_values(tok, z_alone)
        assert torch.equal(alone, tok.encode(batch[i, :, :n], 16000).codes)
        frames = alone.shape[-1]
        assert_latents_agree(z_together[i, :, :frames], z_alone[0])
        real, farthest = fsq_real_disagreements(together[i, :, :frames], rounded_together[i, :, :frames], alone[0],
                                                rounded_alone[0])
        # each layer scales its residual up by a level (4-8x), so float rounding reaches ~1e-3 grid steps by
        # layer 8; a flip farther than 1% of a step from its boundary would not be rounding
        assert real == 0 and farthest < 0.01


def test_fsq_tie_check_can_fail():
    """A code moved by anything but a value on a rounding boundary is a real disagreement."""
    torch.manual_seed(0)
    tok = build_codec(tiny_fsq_config(), name="tiny-fsq").eval()
    codes, rounded = fsq_encode_with_rounded_values(tok, tok.encode_latents(speech(0.5), 16000))
    assert fsq_real_disagreements(codes[0], rounded[0], codes[0], rounded[0]) == (0, 0.0)
    moved = codes[0].clone()
    moved[0, 3] = (moved[0, 3] + 1) % tok.codebook_size  # the values did not move: no boundary explains it
    assert fsq_real_disagreements(codes[0], rounded[0], moved, rounded[0])[0] == 1
    nudged = rounded[0].clone()
    nudged[0, 3] += 2.0  # two grid steps away: more than a rounding flip
    recoded = codes[0].clone()
    recoded[0, 3] = -1
    assert fsq_real_disagreements(codes[0], rounded[0], recoded, nudged)[0] == 1


def test_codec_task_trains_with_fsq():
    recipe = recipe_from_dict({
        "task": "codec", "model": to_dict(tiny_fsq_config()),
        "task_config": {"adversarial_start": 100, "discriminator": to_dict(DiscriminatorConfig.tiny())},
        "data": {"sources": ["."], "segment_seconds": 0.2},
    })
    torch.manual_seed(0)
    task = build_task(recipe)
    opt = torch.optim.AdamW(task.generator.parameters(), lr=3e-3)

    def update(group, loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    batch = torch.stack([speech(0.4)[i * 3200 : (i + 1) * 3200] for i in range(2)])[:, None]
    logs = [task.step(batch, step=0, update=update) for _ in range(25)]
    mels = [entry["gan/mel"] for entry in logs]
    assert "vq/commitment" not in logs[0]  # nothing to commit to: FSQ's grid is fixed
    assert sum(mels[-5:]) / 5 < 0.8 * sum(mels[:5]) / 5, mels


def test_bundled_fsq_recipe_matches_the_default_bitrate():
    fsq, rvq = load_recipe("codec_fsq"), load_recipe("codec")
    a, b = (build_codec(from_dict(CodecConfig, r.model)) for r in (fsq, rvq))
    assert isinstance(a.quantizer, FSQ) and a.bitrate == b.bitrate == 4000.0
