"""The `xcodec2` package's own model, built small, run in a process of its own: `python xcodec2_official.py OUT`.

Run with vector-quantize-pytorch 1.17.8 first on the path (the package's pin: its ResidualFSQ bounds the input
before the FSQ bounds it again; later releases bound once, which the published weights were not trained with).
Writes OUT/official (the publisher's layout: config.json + model.safetensors) and OUT/expected.safetensors: for
each test input, the package's `encode_code` codes and `decode_code` audio.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

warnings.simplefilter("ignore")
import transformers  # noqa: E402
import vector_quantize_pytorch  # noqa: E402
import xcodec2.modeling_xcodec2 as xm  # noqa: E402
from xcodec2.vq.codec_decoder_vocos import CodecDecoderVocos  # noqa: E402
from xcodec2.vq.codec_encoder import CodecEncoder_Transformer  # noqa: E402

S, H = 32, 64  # semantic and acoustic widths (published: 1024 and 1024)
HEADS = 16  # as published
LENGTHS = (16077, 9600)  # 9600 = 30 hops: the package pads a whole extra frame


def tiny_w2v_bert(*_, **kwargs) -> nn.Module:
    """In place of `Wav2Vec2BertModel.from_pretrained("facebook/w2v-bert-2.0")`: its architecture, 24 layers as
    published, narrow."""
    cfg = transformers.Wav2Vec2BertConfig(hidden_size=S, num_hidden_layers=24, num_attention_heads=HEADS,
                                          intermediate_size=2 * S, **kwargs)
    return transformers.Wav2Vec2BertModel(cfg)


def w2v_bert_features(*_, **__):  # facebook/w2v-bert-2.0's preprocessor_config.json
    return transformers.SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=16000,
                                                    padding_value=1.0, stride=2)


def build() -> nn.Module:
    xm.Wav2Vec2BertModel.from_pretrained = tiny_w2v_bert
    xm.AutoFeatureExtractor.from_pretrained = w2v_bert_features
    xm.CodecEncoder_Transformer = functools.partial(CodecEncoder_Transformer, ngf=4, hidden_dim=H)
    xm.CodecDecoderVocos = functools.partial(CodecDecoderVocos, hidden_dim=H, depth=2, heads=HEADS,
                                             pos_meb_dim=H // HEADS, vq_dim=S + H)
    torch.manual_seed(0)
    return narrowed(xm.XCodec2Model(xm.BigCodecConfig(semantic_hidden_size=S)))


def narrowed(model: nn.Module) -> nn.Module:
    """The package's fixed 2048-wide projections at our widths, with weights large enough that the FSQ codes vary
    with the input (shared with neucodec_official.py: same model code)."""
    model.fc_prior, model.fc_post_a = nn.Linear(S + H, S + H), nn.Linear(S + H, H)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("fc_prior", "generator.quantizer.project_in")):
                p.normal_(0, 0.5)
    return model.eval()


def write_expected(model: nn.Module, path: Path, encode_input) -> None:
    """For each of LENGTHS: the input, the package's `encode_code` codes and its `decode_code` audio."""
    expected = {}
    for n in LENGTHS:
        wav = 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            codes = model.encode_code(encode_input(wav))
            expected[f"wav_{n}"], expected[f"codes_{n}"] = wav, codes
            expected[f"audio_{n}"] = model.decode_code(codes)
    save_file({k: v.contiguous() for k, v in expected.items()}, path)


def main(out: Path) -> None:
    assert vector_quantize_pytorch.__file__.count("1.17.8"), vector_quantize_pytorch.__file__
    model = build()
    (out / "official").mkdir(parents=True, exist_ok=True)
    (out / "official" / "config.json").write_text(json.dumps({
        "model_type": "xcodec2", "semantic_hidden_size": S, "codec_encoder_hidden_size": H,
        "codec_decoder_hidden_size": H, "use_vocos": True, "architectures": ["XCodec2Model"]}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "official" / "model.safetensors")
    write_expected(model, out / "expected.safetensors", lambda wav: wav[:, 0])  # the package takes [B, T]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
