"""Builds tests/assets/golden/, the golden outputs that a refactor must not change (tests/test_golden.py): run
once, check the result in.

    python tests/assets/build_golden.py

Three tiny tokenizers, one per family that makes codes of its own (the tests' tiny codec, HuBERT units, the
SpeechTokenizer hybrid), stored as checkpoints so that the test loads them the way users do; a fixed voice-like
signal (int16); and, per tokenizer, the codes of a padded batch of two items and the decoded audio of the first.

Another CPU's float32 rounding may flip a decision that is a near-tie on this one (tests/ties.py); the test allows
exactly those flips. The script records, per tokenizer, the smallest gap between the nearest and the second-nearest
code relative to the latent's norm (the metadata's `smallest_gap`), to show how many such decisions there are.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import speechtok  # noqa: E402
from speechtok.codecs.hubert import HubertConfig  # noqa: E402
from speechtok.codecs.speechtokenizer import SpeechTokenizerConfig  # noqa: E402
from speechtok.models import HubertUnitsConfig, build_hubert_units, build_speechtokenizer, hubert_features  # noqa: E402
from speechtok.quantizers.kmeans import KMeansConfig  # noqa: E402
from speechtok.vocoders.gan import VocosConfig  # noqa: E402
from tests.golden import decision_inputs, gaps  # noqa: E402

OUT = Path(__file__).resolve().parent / "golden"
TINY_CODEC = Path(__file__).resolve().parent / "tiny-codec"
LENGTHS = (24000, 14400)  # 1.5 s and 0.9 s at 16 kHz: a padded batch
CARD = "# {name} (tests only)\n\nRandom weights (seed 0), built by `tests/assets/build_golden.py`: golden outputs.\n"


def voice(num_samples: int, f0: float, seed: int) -> Tensor:
    """A voice-like signal [T]: a harmonic series on a gliding F0 under a syllable-rate envelope, plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples, dtype=torch.float64) / 16000
    pitch = f0 * (1 + 0.2 * torch.sin(2 * math.pi * 0.7 * t))
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / 16000
    wave = sum(torch.sin(k * phase) / k for k in range(1, 24))
    envelope = 0.55 + 0.45 * torch.sin(2 * math.pi * 3.1 * t)
    return (0.08 * wave * envelope + 0.003 * torch.randn(num_samples, generator=g, dtype=torch.float64)).float()


def tiny_units() -> speechtok.Tokenizer:
    hubert = HubertConfig(conv_dim=(16,) * 7, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                          feat_extract_norm="group")
    vocoder = VocosConfig(input_dim=32, dim=32, intermediate_dim=64, num_layers=1, n_fft=1280, hop_length=320)
    torch.manual_seed(0)
    cfg = HubertUnitsConfig(hubert=hubert, layer=2, kmeans=KMeansConfig(dim=32, codebook_size=12), vocoder=vocoder)
    return build_hubert_units(cfg, name="golden-units").eval()


def tiny_hybrid() -> speechtok.Tokenizer:
    cfg = SpeechTokenizerConfig(n_filters=4, strides=(4, 2, 2), dimension=16, semantic_dimension=12, n_q=3,
                                codebook_size=32, lstm_layers=1)
    torch.manual_seed(0)
    tok = build_speechtokenizer(cfg, name="golden-hybrid").eval()
    with torch.no_grad():
        for layer in tok.quantizer.vq.layers:
            layer._codebook.embed.normal_()
            layer._codebook.initted.fill_(True)
            layer._codebook.cluster_size.fill_(1.0)
    return tok


def fit_unit_centroids(tok, wav: Tensor) -> None:
    """Centroids = k-means of the model's own features on the signal, so that units vary over time."""
    feats, _ = hubert_features(tok, wav, 16000)
    x = feats[0].T.double()
    c = x[torch.linspace(0, len(x) - 1, tok.codebook_size).long()].clone()
    for _ in range(20):
        assign = torch.cdist(x, c).argmin(1)
        for j in range(len(c)):
            if (assign == j).any():
                c[j] = x[assign == j].mean(0)
    tok.quantizer.centroids.copy_(c.float())


@torch.inference_mode()
def decision_gap(tok, wav: Tensor) -> float:
    """The smallest lead of a chosen code over the next nearest, relative to the latent's norm."""
    vectors, books = decision_inputs(tok, wav)
    codes = tok.encode(wav, 16000).codes[0]
    return float(gaps(vectors, books, codes).min())


def main() -> None:
    signals = [voice(LENGTHS[0], 120.0, 0), voice(LENGTHS[1], 210.0, 1)]
    q16 = [(s * 32767).round().clamp(-32768, 32767).to(torch.int16) for s in signals]
    signals = [s.float() / 32767 for s in q16]  # what the test reads back
    batch = torch.zeros(2, 1, LENGTHS[0])
    for i, s in enumerate(signals):
        batch[i, 0, : s.numel()] = s
    units = tiny_units()
    fit_unit_centroids(units, signals[0])
    OUT.mkdir(exist_ok=True)
    units.save(OUT / "tiny-units", card=CARD.format(name="golden-units"))
    tiny_hybrid().save(OUT / "tiny-hybrid", card=CARD.format(name="golden-hybrid"))
    tensors = {"signal_0": q16[0], "signal_1": q16[1]}
    gaps = {}
    for key, path in [("codec", TINY_CODEC), ("units", OUT / "tiny-units"), ("hybrid", OUT / "tiny-hybrid")]:
        tok = speechtok.load(path)
        gaps[key] = min(decision_gap(tok, s) for s in signals)
        codes = tok.encode(batch, 16000, lengths=torch.tensor(LENGTHS))
        tensors[f"{key}.codes"] = codes.codes.int().contiguous()
        tensors[f"{key}.audio"] = tok.decode(codes.item(0))[0, 0].contiguous()
    save_file(tensors, str(OUT / "golden.safetensors"), metadata={"smallest_gap": json.dumps(gaps)})
    print(f"wrote {OUT}; smallest decision gaps relative to the latent norm: {gaps}")


if __name__ == "__main__":
    main()
