"""Native HuBERT: parity with transformers.HubertModel (every layer, 1e-4) through each format users have
(HF safetensors, HF pytorch_model.bin, fairseq .pt), safe loading, batch masking and windowing."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from speechtok.codecs.hubert import HubertConfig, HubertEncoder, HubertModel
from speechtok.codecs.hubert_loading import load_hubert, parse_conv_layers
from speechtok.errors import CheckpointError

transformers = pytest.importorskip("transformers")  # a test-only extra

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread



def hf_model(**overrides):
    torch.manual_seed(0)
    cfg = transformers.HubertConfig(**{**TINY, **overrides})
    model = transformers.HubertModel(cfg).eval()
    with torch.no_grad():  # random norms and biases, so that a mis-mapped key cannot pass as a default
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def hf_states(model, wav):
    with torch.no_grad():
        return model(wav, output_hidden_states=True).hidden_states


def assert_parity(ours: HubertModel, theirs, wav):
    with torch.no_grad():
        mine = ours(wav)
    ref = hf_states(theirs, wav)
    assert len(mine) == len(ref) == theirs.config.num_hidden_layers + 1
    for layer, (a, b) in enumerate(zip(mine, ref)):
        assert a.shape == b.shape, layer
        assert (a - b).abs().max() < 1e-4, f"layer {layer}: max diff {(a - b).abs().max():.2e}"


@pytest.mark.parametrize("variant", [{}, {"feat_extract_norm": "layer", "do_stable_layer_norm": True,
                                          "conv_bias": True}])
def test_hf_safetensors_and_bin_parity(tmp_path, variant):
    theirs = hf_model(**variant)
    theirs.save_pretrained(tmp_path / "st")
    wav = torch.randn(2, 4000)
    assert_parity(load_hubert(tmp_path / "st"), theirs, wav)
    # the older format: pytorch_model.bin (weight_g / weight_v keys), read with weights_only=True
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    state = {k.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): v for k, v in theirs.state_dict().items()}
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    assert_parity(load_hubert(tmp_path / "bin"), theirs, wav)


def to_fairseq(theirs) -> dict:
    """A fairseq HuBERT state dict (fairseq's key names) made from a transformers model's weights."""
    cfg, out = theirs.config, {}
    for k, v in theirs.state_dict().items():
        p = k.split(".")
        if k.startswith("feature_extractor.conv_layers."):
            i = p[2]
            if p[3] == "conv":
                k = f"feature_extractor.conv_layers.{i}.0.{p[-1]}"
            else:
                k = (f"feature_extractor.conv_layers.{i}.2.{p[-1]}" if cfg.feat_extract_norm == "group"
                     else f"feature_extractor.conv_layers.{i}.2.1.{p[-1]}")
        elif k.startswith("feature_projection.layer_norm."):
            k = "layer_norm." + p[-1]
        elif k.startswith("feature_projection.projection."):
            k = "post_extract_proj." + p[-1]
        elif k == "masked_spec_embed":
            k = "mask_emb"
        elif k.startswith("encoder.pos_conv_embed.conv."):
            k = "encoder.pos_conv.0." + {"original0": "weight_g", "original1": "weight_v"}.get(p[-1], p[-1])
        elif k.startswith("encoder.layers."):
            k = (k.replace(".attention.", ".self_attn.").replace(".layer_norm.", ".self_attn_layer_norm.")
                 .replace(".feed_forward.intermediate_dense.", ".fc1.").replace(".feed_forward.output_dense.", ".fc2."))
        out[k] = v.clone()
    out["final_proj.weight"] = torch.randn(8, cfg.hidden_size)  # pre-training heads: dropped on load
    out["label_embs_concat"] = torch.randn(10, 8)
    return out


def fairseq_model_cfg(c) -> dict:
    layers = " + ".join(f"[({d},{k},{s})]" for d, k, s in zip(c.conv_dim, c.conv_kernel, c.conv_stride))
    return {"_name": "hubert", "extractor_mode": "default" if c.feat_extract_norm == "group" else "layer_norm",
            "encoder_layers": c.num_hidden_layers, "encoder_embed_dim": c.hidden_size,
            "encoder_ffn_embed_dim": c.intermediate_size, "encoder_attention_heads": c.num_attention_heads,
            "activation_fn": "gelu", "layer_norm_first": c.do_stable_layer_norm, "conv_feature_layers": layers,
            "conv_bias": c.conv_bias, "conv_pos": c.num_conv_pos_embeddings, "conv_pos_groups":
            c.num_conv_pos_embedding_groups}


def test_fairseq_checkpoint_parity(tmp_path):
    theirs = hf_model()
    wav = torch.randn(1, 3600)
    # the current layout: cfg as plain containers
    torch.save({"args": None, "cfg": {"model": fairseq_model_cfg(theirs.config)}, "model": to_fairseq(theirs)},
               tmp_path / "new.pt")
    assert_parity(load_hubert(tmp_path / "new.pt"), theirs, wav)
    # the older layout: an argparse.Namespace, one of the explicitly allowed globals
    args = argparse.Namespace(**fairseq_model_cfg(theirs.config))
    torch.save({"args": args, "model": to_fairseq(theirs)}, tmp_path / "old.pt")
    assert_parity(load_hubert(tmp_path / "old.pt"), theirs, wav)


class _Payload:
    """Unpickling this deletes a file: what an unsafe torch.load would let a checkpoint do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.remove, (self.path,))


def test_fairseq_refuses_unknown_globals_without_running_them(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("still here")
    torch.save({"cfg": _Payload(str(sentinel)), "model": {}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to unpickle.*argparse\.Namespace"):
        load_hubert(tmp_path / "evil.pt")
    assert sentinel.read_text() == "still here"


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_hubert(tmp_path / "nope.pt")
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        load_hubert(tmp_path / "d")
    theirs = hf_model()
    theirs.save_pretrained(tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match="weights do not match.*missing"):
        load_hubert(tmp_path / "hf")
    with pytest.raises(CheckpointError, match="conv_feature_layers"):
        parse_conv_layers("__import__('os')", "x.pt")


def test_frames_and_batch_masking():
    """floor((T - 400) / 320) + 1 frames; an item of a padded batch gets its features alone (group norm and
    attention masked). Bound checked: every frame within 1e-4 (stricter than the 99%-of-codes bound)."""
    torch.manual_seed(0)
    model = HubertModel(HubertConfig(**{**TINY, "feat_extract_norm": "group"})).eval()
    assert model.num_frames(torch.tensor([400, 719, 720, 16000])).tolist() == [1, 1, 2, 49]
    a, b = torch.randn(6000), torch.randn(3333)
    batch = torch.stack([a, torch.nn.functional.pad(b, (0, 6000 - 3333))])
    with torch.no_grad():
        together = model(batch, torch.tensor([6000, 3333]))[-1]
        alone_b = model(b[None])[-1]
        alone_a = model(a[None])[-1]
    n_b = int(model.num_frames(torch.tensor(3333)))
    assert alone_b.shape[1] == n_b == 10
    assert (together[1, :n_b] - alone_b[0]).abs().max() < 1e-4
    assert (together[0] - alone_a[0]).abs().max() < 1e-4


def test_windowing_long_inputs():
    """Past `window_seconds` the encoder runs in windows: the frame count and timing of one pass, and each kept frame
    is exactly the frame of its window run alone (frame grid aligned: windows start on a multiple of the hop).
    With global attention the windowed features are not those of one pass; that is documented, not tested."""
    torch.manual_seed(0)
    enc = HubertEncoder(HubertConfig(**TINY), layer=2).eval()
    wav = torch.randn(1, 1, 16000 * 3 + 123)
    with torch.no_grad():
        whole = enc(wav)
        enc.window_seconds, enc.context_seconds = 1.0, 0.5
        windowed = enc(wav)
        windowed_masked = enc(wav, torch.tensor([wav.shape[-1]]))
        # the second window keeps frames [50, 100) and runs over frames [25, 125): samples [25 * 320, 124 * 320 + 400)
        second = enc.model(wav[0, :, 25 * 320 : 124 * 320 + 400], last_layer=2)[2]
    assert whole.shape == windowed.shape == (1, 32, (wav.shape[-1] - 400) // 320 + 1)
    assert torch.allclose(windowed, windowed_masked, atol=1e-5)
    assert torch.allclose(windowed[0, :, 50:100].T, second[0, 25:75], atol=1e-5)
