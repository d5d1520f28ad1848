"""Golden outputs: the codes and audio that three tiny tokenizers (codec, HuBERT units, hybrid), loaded from their
checkpoints the way users load them, give on a fixed signal (tests/assets/golden/, made by
tests/assets/build_golden.py). A refactor that changes what any family computes fails here.

Codes must be equal frame for frame, except where a decision is a near-tie that another CPU's rounding may flip
(tests/golden.py); the audio within float32 rounding of the decoder's arithmetic.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import speechtok

from .golden import TIE_RTOL, decision_inputs, gaps

pytestmark = pytest.mark.usefixtures("one_thread")

ASSETS = Path(__file__).resolve().parent / "assets"
MODELS = {"codec": ASSETS / "tiny-codec", "units": ASSETS / "golden" / "tiny-units",
          "hybrid": ASSETS / "golden" / "tiny-hybrid"}


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    with safe_open(str(ASSETS / "golden" / "golden.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def signals(golden) -> list[torch.Tensor]:
    return [golden[f"signal_{i}"].float() / 32767 for i in range(2)]


def padded(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([s.numel() for s in items])
    batch = torch.zeros(len(items), 1, int(lengths.max()))
    for i, s in enumerate(items):
        batch[i, 0, : s.numel()] = s
    return batch, lengths


@pytest.mark.parametrize("family", sorted(MODELS))
def test_codes_are_the_golden_codes(golden, family):
    tok = speechtok.load(MODELS[family])
    items = signals(golden)
    codes = tok.encode(*padded(items)[:1], 16000, lengths=padded(items)[1])
    expected = golden[f"{family}.codes"].long()
    assert codes.codes.shape == expected.shape
    for i, wav in enumerate(items):
        frames = int(codes.lengths[i])
        got, want = codes.codes[i, :, :frames], expected[i, :, :frames]
        if torch.equal(got, want):
            continue
        # a flip is a near-tie when both the golden and today's codes are (within rounding) the nearest ones
        vectors, books = decision_inputs(tok, wav)
        worst = torch.minimum(gaps(vectors, books, got).min(0).values, gaps(vectors, books, want).min(0).values)
        flipped = (got != want).any(0)
        real = [t for t in flipped.nonzero().flatten().tolist() if float(worst[t]) < -2 * TIE_RTOL]
        assert not real, f"{family}: item {i} frames {real[:5]} differ from the golden codes beyond a near-tie"


@pytest.mark.parametrize("family", sorted(MODELS))
def test_decoded_audio_is_the_golden_audio(golden, family):
    tok = speechtok.load(MODELS[family])
    item = tok.encode(*padded(signals(golden))[:1], 16000, lengths=padded(signals(golden))[1]).item(0)
    frames = item.codes.shape[-1]
    wav = tok.decode(dataclasses.replace(item, codes=golden[f"{family}.codes"][:1, :, :frames].long()))[0, 0]
    want = golden[f"{family}.audio"]
    assert wav.shape == want.shape
    scale = float(want.abs().max())
    assert float((wav - want).abs().max()) <= 1e-4 * scale, f"{family}: the decoded audio changed"
