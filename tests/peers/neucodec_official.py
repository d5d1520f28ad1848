"""The `neucodec` package's own model, built small, run in a process of its own: `python neucodec_official.py OUT`.

As xcodec2_official.py (whose tiny w2v-BERT and feature extractor it shares): run with vector-quantize-pytorch
1.17.8, the package's pin, first on the path. Writes OUT/pytorch_model.bin (the publisher's layout: a state dict,
as neuphonic/neucodec ships it) and OUT/expected.safetensors: for each test input, the package's `encode_code`
codes and `decode_code` 24 kHz audio.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

warnings.simplefilter("ignore")
import neucodec.model as nm  # noqa: E402
import vector_quantize_pytorch  # noqa: E402
from neucodec.codec_decoder_vocos import CodecDecoderVocos  # noqa: E402
from neucodec.codec_encoder import CodecEncoder  # noqa: E402
from neucodec.module import SemanticEncoder  # noqa: E402
from xcodec2_official import HEADS, H, S, narrowed, tiny_w2v_bert, w2v_bert_features, write_expected  # noqa: E402


def build() -> nn.Module:
    nm.Wav2Vec2BertModel.from_pretrained = tiny_w2v_bert
    nm.AutoFeatureExtractor.from_pretrained = w2v_bert_features
    nm.SemanticEncoder = lambda *_: SemanticEncoder(S, S, S)
    nm.CodecEncoder = functools.partial(CodecEncoder, ngf=4, hidden_dim=H)
    nm.CodecDecoderVocos = functools.partial(CodecDecoderVocos, hidden_dim=H, depth=2, heads=HEADS,
                                             pos_meb_dim=H // HEADS, vq_dim=S + H)
    torch.manual_seed(0)
    model = nm.NeuCodec(24_000, 480)  # as the package's from_pretrained builds it
    model.fc_post_s = nn.Linear(S + H, S)  # in the published file, unused by inference
    return narrowed(model)


def main(out: Path) -> None:
    assert vector_quantize_pytorch.__file__.count("1.17.8"), vector_quantize_pytorch.__file__
    model = build()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    write_expected(model, out / "expected.safetensors", lambda wav: wav)  # the package takes [B, 1, T]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
