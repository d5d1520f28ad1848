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
from safetensors.torch import save_file
from torch import nn

warnings.simplefilter("ignore")
import neucodec.model as nm  # noqa: E402
import vector_quantize_pytorch  # noqa: E402
from neucodec.codec_decoder_vocos import CodecDecoderVocos  # noqa: E402
from neucodec.codec_encoder import CodecEncoder  # noqa: E402
from neucodec.module import SemanticEncoder  # noqa: E402
from xcodec2_official import HEADS, H, S, tiny_w2v_bert, w2v_bert_features  # noqa: E402

LENGTHS = (16077, 9600)


def build() -> nn.Module:
    nm.Wav2Vec2BertModel.from_pretrained = tiny_w2v_bert
    nm.AutoFeatureExtractor.from_pretrained = w2v_bert_features
    nm.SemanticEncoder = lambda *_: SemanticEncoder(S, S, S)
    nm.CodecEncoder = functools.partial(CodecEncoder, ngf=4, hidden_dim=H)
    nm.CodecDecoderVocos = functools.partial(CodecDecoderVocos, hidden_dim=H, depth=2, heads=HEADS,
                                             pos_meb_dim=H // HEADS, vq_dim=S + H)
    torch.manual_seed(0)
    model = nm.NeuCodec(24_000, 480)  # as the package's from_pretrained builds it
    model.fc_prior, model.fc_post_a = nn.Linear(S + H, S + H), nn.Linear(S + H, H)  # 2048 wide in the package
    model.fc_post_s = nn.Linear(S + H, S)  # in the published file, unused by inference
    with torch.no_grad():  # large enough that the FSQ codes vary with the input
        for name, p in model.named_parameters():
            if name.startswith(("fc_prior", "generator.quantizer.project_in")):
                p.normal_(0, 0.5)
    return model.eval()


def main(out: Path) -> None:
    assert vector_quantize_pytorch.__file__.count("1.17.8"), vector_quantize_pytorch.__file__
    model = build()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    expected = {}
    for n in LENGTHS:
        wav = 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            codes = model.encode_code(wav)
            expected[f"wav_{n}"], expected[f"codes_{n}"] = wav, codes
            expected[f"audio_{n}"] = model.decode_code(codes)
    save_file({k: v.contiguous() for k, v in expected.items()}, out / "expected.safetensors")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
