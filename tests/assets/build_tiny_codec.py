"""Builds tests/assets/tiny-codec, the tests' codec: run once, check the result in (it is then the same file on
every machine, where a fixture built at test time came out slightly different per CPU).

    python tests/assets/build_tiny_codec.py      # needs ../shared/data (LibriSpeech train excerpts)

A random tiny encoder maps speech to nearly one point (its output is a bias plus variations 1e-3 of it), and
k-means codebooks fitted on a few seconds of such latents give RVQ layers that quantize float32 rounding: whether
two encodings of the same audio agree was then decided by the CPU's kernels. So the encoder is rescaled to unit
variance layer by layer on real speech (LSUV, Mishkin & Matas 2016) and each RVQ layer is k-means on the
residuals of 3 minutes of it: every layer then quantizes a residual at a healthy fraction of the latent, with
well-separated codewords (tests/test_fixture.py checks both).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from speechtok import audio  # noqa: E402
from speechtok.models import build_codec  # noqa: E402
from tests.conftest import DATA, tiny_config  # noqa: E402

OUT = Path(__file__).resolve().parent / "tiny-codec"
CARD = """# tiny-codec (tests only)

A codec of the default's shape (16 kHz, 50 frames/s, 8 x 64 codes) with a few thousand parameters, for tests:
its encoder and decoder are random (the encoder rescaled to unit variance per layer), its RVQ codebooks k-means
fits on the residuals of LibriSpeech train excerpts (CC BY 4.0). It makes no useful sound. Built by
`tests/assets/build_tiny_codec.py`.
"""


def train_speech(num_files: int = 40, seconds: float = 5.0) -> Tensor:
    """[N, 1, T]: the first `seconds` of `num_files` LibriSpeech train excerpts (none shorter)."""
    rows = [r for r in csv.DictReader(open(DATA / "librispeech_samples/manifest.tsv"), delimiter="\t")
            if r["split"] == "train"]
    n = int(seconds * 16000)
    wavs = [audio.load(DATA / r["path"], 16000)[0, 0] for r in rows[:num_files]]
    return torch.stack([w[:n] for w in wavs if w.numel() >= n])[:, None]


@torch.no_grad()
def unit_variance(encoder: nn.Module, wav: Tensor) -> None:
    """LSUV: in forward order, scale each conv so that its output has zero mean and unit variance on `wav`."""
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv1d)]
    for conv in convs:
        seen = {}
        hook = conv.register_forward_hook(lambda m, i, o: seen.setdefault("y", o))
        encoder(wav)
        hook.remove()
        y = seen["y"].transpose(0, 1).flatten(1)  # [C, B * T]
        conv.weight /= y.std()
        conv.bias.copy_((conv.bias - y.mean(1)) / y.std())


def kmeans(x: Tensor, k: int, iters: int, generator: torch.Generator) -> Tensor:
    """Lloyd's algorithm in float64 from k random points: centroids [k, d]."""
    c = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c


def main() -> None:
    torch.manual_seed(0)
    tok = build_codec(tiny_config(), norm=False, name="tiny-codec").eval()
    wav = train_speech()
    unit_variance(tok.encoder, wav)
    vq = tok.quantizer.vq
    with torch.no_grad():
        residual = vq.project_in(tok.encoder(wav).transpose(1, 2)).flatten(0, 1).double()  # [N * T, d]
        generator = torch.Generator().manual_seed(0)
        for layer in vq.layers:
            book = kmeans(residual, tok.codebook_size, 10, generator)
            layer._codebook.embed.copy_(book[None].float())
            layer._codebook.initted.fill_(True)
            residual = residual - book[torch.cdist(residual, book).argmin(1)]
    tok.save(OUT, card=CARD)
    print(f"wrote {OUT} from {wav.shape[0]} x {wav.shape[-1] / 16000:g} s")


if __name__ == "__main__":
    main()
