"""The `dualcodec` package's model and inference, built small, run in a process of its own:
`python dualcodec_official.py OUT [--layout-only]`.

Run with the package (and easydict) first on the path. Writes the publisher's layouts: OUT/dualcodec
(`dualcodec_12hz_16384_4096.safetensors` + `w2vbert2_mean_var_stats_emilia.pt`, as amphion/dualcodec) and OUT/w2v
(a narrow w2v-BERT 2.0, as facebook/w2v-bert-2.0); and OUT/expected.safetensors: for each test input, the codes of
the package's `Inference.encode` (semantic codebook first) and the audio of its `decode`.

The package's import fetches through `cached_path` (which needs the cloud SDKs): a stand-in that returns the local
path is installed first. Its `Inference` runs w2v-BERT under fp16 autocast (meant for a GPU); autocast is turned
off here, so the reference is the fp32 computation the adapter makes.
"""

from __future__ import annotations

import contextlib
import sys
import types
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

warnings.simplefilter("ignore")
sys.modules["cached_path"] = types.SimpleNamespace(cached_path=lambda path: path)  # type: ignore[assignment]
torch.autocast = lambda *args, **kwargs: contextlib.nullcontext()  # type: ignore[assignment,misc]
import transformers  # noqa: E402
from dac.nn.layers import WNConv1d  # noqa: E402
from dualcodec.infer.dualcodec.inference_with_semantic import Inference  # noqa: E402
from dualcodec.model_codec import DualCodec  # noqa: E402

S, C = 32, 48  # w2v-BERT and ConvNeXt widths (published: 1024 and 768)
LENGTHS = (48000, 61111)  # 2 s, and a length off every grid
SEMANTIC_SIZE, ACOUSTIC_SIZE, ACOUSTIC_Q = 64, 16, 3  # published: 16384, 4096, 7


def build() -> torch.nn.Module:
    """The 12.5 Hz release's architecture (its yaml's rates, causal blocks), narrow. The package fixes the
    semantic input and output at 1024 wide: those two 1x1 convolutions are built at our widths."""
    torch.manual_seed(0)
    model = DualCodec(sample_rate=24000, encoder_rates=[4, 5, 6, 8, 2], decoder_rates=[2, 8, 6, 5, 4], encoder_dim=4,
                      latent_dim=64, decoder_dim=64, n_codebooks=ACOUSTIC_Q, codebook_size=ACOUSTIC_SIZE,
                      semantic_codebook_size=SEMANTIC_SIZE, is_causal=True, semantic_downsample_factor=4,
                      convnext_dim=C, convnext_layers=2)
    model.convnext_encoder[0] = WNConv1d(S, C, kernel_size=1)
    model.convnext_decoder[-1] = WNConv1d(C, 64, kernel_size=1)
    with torch.no_grad():
        model.dac.decoder.model[-2].weight_g.mul_(20)  # audible output (the last conv before the tanh)
    return model.eval()


def w2v_bert(out: Path) -> None:
    config = transformers.Wav2Vec2BertConfig(hidden_size=S, num_hidden_layers=18, num_attention_heads=4,
                                             intermediate_size=2 * S)
    torch.manual_seed(1)
    transformers.Wav2Vec2BertModel(config).save_pretrained(out)
    transformers.SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=16000,
                                             padding_value=1.0, stride=2).save_pretrained(out)


def main(out: Path, layout_only: bool = False) -> None:
    model = build()
    (out / "dualcodec").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              out / "dualcodec" / "dualcodec_12hz_16384_4096.safetensors")
    torch.save({"mean": 0.1 * torch.randn(S), "var": 0.5 + torch.rand(S)},
               out / "dualcodec" / "w2vbert2_mean_var_stats_emilia.pt")
    w2v_bert(out / "w2v")
    if layout_only:
        return
    inference = Inference(model, dualcodec_path=str(out / "dualcodec"), w2v_path=str(out / "w2v"), device="cpu",
                          autocast=False)
    expected = {}
    for n in LENGTHS:
        wav = 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(n))
        semantic, acoustic = inference.encode(wav, n_quantizers=1 + ACOUSTIC_Q)
        expected[f"wav_{n}"], expected[f"codes_{n}"] = wav, torch.cat([semantic, acoustic], dim=1)
        expected[f"audio_{n}"] = inference.decode(semantic, acoustic)
    save_file({k: v.contiguous() for k, v in expected.items()}, out / "expected.safetensors")


if __name__ == "__main__":
    main(Path(sys.argv[1]), layout_only="--layout-only" in sys.argv[2:])
