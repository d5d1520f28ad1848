"""Speaker perturbation (training/augment.py): every partial moves by the ratio, length and timing stay, the phase
vocoder keeps pitch when it stretches, batches are perturbed reproducibly, item by item."""

from __future__ import annotations

import math

import pytest
import torch

from speechtok.training.augment import perturb_speakers, shift_voice, stretch, voice_ratios

SR = 16000


def tones(*freqs: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return sum(0.3 * torch.sin(2 * math.pi * f * t) for f in freqs)


def peaks(wav: torch.Tensor, n: int) -> list[float]:
    """The n strongest frequencies (Hz) of wav's middle, away from the edges."""
    middle = wav[2000:-2000]
    spectrum = torch.fft.rfft(middle * torch.hann_window(len(middle))).abs()
    freqs = torch.fft.rfftfreq(len(middle), 1 / SR)
    found: list[float] = []
    for i in spectrum.argsort(descending=True).tolist():
        if all(abs(freqs[i] - f) > 20 for f in found):
            found.append(float(freqs[i]))
        if len(found) == n:
            return sorted(found)
    return sorted(found)


@pytest.mark.parametrize("ratio", [0.85, 1.2])
def test_shifting_the_voice_moves_every_partial_and_keeps_the_length(ratio):
    wav = tones(200, 1100)
    shifted = shift_voice(wav, ratio)
    assert shifted.shape == wav.shape
    assert peaks(shifted, 2) == pytest.approx([200 * ratio, 1100 * ratio], abs=3)
    # the phase vocoder smears phases a little (some loss of level), it must not cancel the partials
    assert 0.8 < float(shifted.pow(2).mean().sqrt() / wav.pow(2).mean().sqrt()) < 1.1


def test_stretching_changes_the_duration_not_the_pitch():
    wav = tones(300)
    assert torch.allclose(stretch(wav, 1.0)[512:-512], wav[512:-512], atol=1e-3)
    longer = stretch(wav, 1.3)
    assert longer.shape[-1] == round(1.3 * wav.shape[-1])
    assert peaks(longer, 1) == pytest.approx([300], abs=3)


def test_a_shifted_voice_keeps_its_timing():
    """A tone burst from 0.40 s to 0.70 s is still there after the shift, within 10 ms at both ends."""
    wav = tones(250)
    wav[: int(0.4 * SR)] = 0
    wav[int(0.7 * SR):] = 0
    for ratio in (0.85, 1.2):
        loud = (shift_voice(wav, ratio).abs() > 0.1).nonzero()[:, 0].float() / SR
        assert float(loud.min()) == pytest.approx(0.40, abs=0.01)
        assert float(loud.max()) == pytest.approx(0.70, abs=0.01)


def test_voice_ratios_are_log_spaced_both_ways_and_never_one():
    ratios = voice_ratios(1.2)
    assert len(ratios) == 8 and 1.0 not in ratios.tolist()
    torch.testing.assert_close(ratios * ratios.flip(0), torch.ones(8, dtype=torch.float64))
    assert float(ratios.min()) == pytest.approx(1 / 1.2) and float(ratios.max()) == pytest.approx(1.2)


def test_perturbing_a_batch_is_reproducible_and_item_by_item():
    batch = torch.stack([tones(150 + 40 * i) for i in range(8)])[:, None]
    first = perturb_speakers(batch, 0.5, 1.2, torch.Generator().manual_seed(3))
    again = perturb_speakers(batch, 0.5, 1.2, torch.Generator().manual_seed(3))
    assert first.shape == batch.shape and torch.equal(first, again)
    untouched = [torch.equal(a, b) for a, b in zip(first, batch)]
    assert 0 < sum(untouched) < len(untouched)  # seed 3 chooses some items, not all
    for item, shifted, same in zip(batch, first, untouched):  # each one shifted alone by one of the ratios
        assert same or any(torch.allclose(shifted[0], shift_voice(item[0], float(r)), atol=1e-5)
                           for r in voice_ratios(1.2))
    assert perturb_speakers(batch, 0.0, 1.2, torch.Generator()) is batch
    assert not any(torch.equal(a, b) for a, b in zip(perturb_speakers(batch, 1.0, 1.2, torch.Generator()), batch))
    with pytest.raises(ValueError, match="perturb_max_ratio"):
        perturb_speakers(batch, 0.5, 0.9, torch.Generator())
