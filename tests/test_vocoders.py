"""Vocoder pieces: ISTFT, mel features, discriminators, GAN losses, and a tiny generator that learns."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from speechtok.layers.mel import MelSpectrogram, mel_filterbank
from speechtok.vocoders import (
    ISTFT,
    ComplexSTFTLoss,
    DiscriminatorConfig,
    DiscriminatorOutput,
    Discriminators,
    MultiScaleMelLoss,
    VocosConfig,
    VocosDecoder,
    adversarial_d_loss,
    adversarial_g_loss,
    discriminator_losses,
    feature_matching_loss,
    generator_losses,
)

SR = 16000
SMALL_SCALES = dict(n_ffts=(32, 64, 128), n_mels=(5, 10, 20))


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ISTFT


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (1280, 320), (48, 16)])
def test_istft_inverts_same_padded_stft(n_fft: int, hop: int):
    num_frames = 20
    wav = _noise(2, num_frames * hop)
    pad = (n_fft - hop) // 2
    spec = torch.stft(F.pad(wav, (pad, pad)), n_fft, hop, window=torch.hann_window(n_fft), center=False,
                      return_complex=True)  # [B, n_fft // 2 + 1, T]
    assert spec.shape[-1] == num_frames
    torch.testing.assert_close(ISTFT(n_fft, hop)(spec), wav, atol=1e-5, rtol=0)


def test_istft_rejects_odd_padding():
    with pytest.raises(ValueError, match="even"):
        ISTFT(64, 15)


# mel


@pytest.mark.parametrize("n_fft, n_mels, f_min, f_max", [(1024, 80, 0.0, None), (32, 5, 0.0, None),
                                                         (2048, 320, 0.0, None), (512, 64, 50.0, 7000.0)])
def test_mel_filterbank_matches_librosa(n_fft: int, n_mels: int, f_min: float, f_max: float | None):
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    ours = mel_filterbank(SR, n_fft, n_mels, f_min, f_max)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    torch.testing.assert_close(ours, torch.from_numpy(ref).float(), atol=1e-7, rtol=1e-5)


def test_mel_spectrogram_matches_librosa():
    librosa = pytest.importorskip("librosa")
    wav = _noise(3000)
    ref = librosa.feature.melspectrogram(y=wav.numpy(), sr=SR, n_fft=512, hop_length=128, n_mels=40, power=1.0)
    ours = MelSpectrogram(SR, 512, 128, 40)(rearrange(wav, "t -> 1 1 t"))
    expected = torch.from_numpy(ref).clamp(min=1e-5).log10()[None]
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


def test_mel_spectrogram_shapes():
    mel = MelSpectrogram(SR, 256, 64, 32)
    wav = _noise(2, 1, 1000)
    assert mel(wav).shape == (2, 32, 1000 // 64 + 1)
    torch.testing.assert_close(mel(wav), mel(rearrange(wav, "b 1 t -> b t")))
    with pytest.raises(ValueError, match="shape"):
        mel(_noise(2, 2, 1000))


def test_mel_filterbank_rejects_bad_range():
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(SR, 256, 32, f_min=0.0, f_max=9000.0)


def test_complex_stft_loss_grows_with_the_phase_error():
    """Phase-shifted copies of a sine have its magnitudes: a magnitude-only loss scores them alike (edges aside),
    the complex term grows with the shift."""
    t = torch.arange(8000) / SR
    wav = 0.5 * torch.sin(2 * torch.pi * 220 * t)[None, None]
    loss_fn = ComplexSTFTLoss()
    losses = [loss_fn(0.5 * torch.sin(2 * torch.pi * 220 * t + shift)[None, None], wav).item()
              for shift in (0.0, torch.pi / 4, torch.pi / 2, torch.pi)]
    assert losses[0] == 0.0
    assert losses[1] < losses[2] < losses[3] and losses[3] > 2 * losses[1], losses
    wav_hat = (0.5 * torch.sin(2 * torch.pi * 220 * t + 1.0)[None, None]).requires_grad_()
    loss_fn(wav_hat, wav).backward()
    assert torch.isfinite(wav_hat.grad).all() and wav_hat.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="one shape"):
        loss_fn(wav[..., :-1], wav)


def test_mel_loss_zero_for_identical_positive_otherwise_with_gradients():
    loss_fn = MultiScaleMelLoss(SR)  # the full DAC set of scales, 32 .. 2048
    wav = _noise(2, 1, 4000)
    assert loss_fn(wav, wav).item() == 0.0
    wav_hat = (wav + 0.1 * _noise(2, 1, 4000, seed=1)).requires_grad_()
    loss = loss_fn(wav_hat, wav)
    assert loss.item() > 0
    loss.backward()
    assert torch.isfinite(wav_hat.grad).all() and wav_hat.grad.abs().sum() > 0


# discriminators


@pytest.mark.parametrize("length", [1000, 1601, 3200])
def test_discriminator_outputs(length: int):
    cfg = DiscriminatorConfig.tiny()
    outs = Discriminators(cfg)(_noise(2, 1, length))
    assert len(outs) == len(cfg.periods) + len(cfg.stft_n_ffts)
    for out in outs:
        assert isinstance(out, DiscriminatorOutput)
        assert out.logits.ndim == 2 and out.logits.shape[0] == 2
        for feat in out.features:
            assert feat.ndim == 4 and feat.shape[0] == 2
        assert out.features[-1].shape[1] == 1 and out.features[-1].numel() == out.logits.numel()
    period_outs, stft_outs = outs[: len(cfg.periods)], outs[len(cfg.periods):]
    assert all(len(o.features) == len(cfg.period_channels) + 1 for o in period_outs)
    assert all(len(o.features) == 6 for o in stft_outs)  # 5 convs + post
    for out, p in zip(period_outs, cfg.periods):
        assert out.features[0].shape[-1] == p  # the folded period axis is kept
        assert out.features[0].shape[-2] == math.ceil(math.ceil(length / p) / 3)


def test_default_discriminators_build():
    d = Discriminators(DiscriminatorConfig())
    assert len(d.discriminators) == 8
    assert DiscriminatorConfig(periods=[2, 3]).periods == (2, 3)


def test_discriminators_reject_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        Discriminators(DiscriminatorConfig.tiny())(_noise(2, 1000))


# adversarial and feature-matching losses


def _outputs(*scores: float) -> list[DiscriminatorOutput]:
    return [DiscriminatorOutput(torch.full((2, 5), float(s)), [torch.full((2, 3, 4, 4), float(s))]) for s in scores]


def test_adversarial_losses_signs():
    high, low = _outputs(1.0, 1.0), _outputs(0.0, 0.0)
    assert adversarial_d_loss(high, low).item() == 0.0  # real at its target 1, fake at 0
    assert adversarial_d_loss(high, low) < adversarial_d_loss(_outputs(0.5, 0.5), _outputs(0.5, 0.5))
    assert adversarial_d_loss(_outputs(0.5, 0.5), _outputs(0.5, 0.5)) < adversarial_d_loss(low, high)
    assert adversarial_g_loss(high).item() == 0.0  # the generator wants its fakes scored as real
    assert adversarial_g_loss(high) < adversarial_g_loss(low)


def test_feature_matching():
    real = _outputs(0.3, -2.0)
    assert feature_matching_loss(real, real).item() == 0.0
    assert feature_matching_loss(real, _outputs(0.4, -2.0)).item() > 0
    fake = [DiscriminatorOutput(o.logits, [f.clone().requires_grad_() for f in o.features]) for o in _outputs(1, 1)]
    feature_matching_loss(real, fake).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for o in fake for f in o.features)


def test_loss_dicts_keys_and_gradients():
    disc = Discriminators(DiscriminatorConfig.tiny())
    wav = _noise(1, 1, 1600)
    wav_hat = (0.5 * _noise(1, 1, 1600, seed=1)).requires_grad_()
    g = generator_losses(wav_hat, wav, disc(wav), disc(wav_hat), MultiScaleMelLoss(SR, **SMALL_SCALES))
    assert set(g) == {"gan/mel", "gan/adv_g", "gan/feature"}
    sum(g.values()).backward()
    assert wav_hat.grad.abs().sum() > 0
    d = discriminator_losses(disc(wav), disc(wav_hat.detach()))
    assert set(d) == {"gan/adv_d"} and d["gan/adv_d"].ndim == 0


# training


def test_tiny_generator_learns_mel():
    torch.manual_seed(0)  # the generator's initial weights
    cfg = VocosConfig(input_dim=8, dim=32, intermediate_dim=64, num_layers=2, n_fft=64, hop_length=16)
    gen = VocosDecoder(cfg)
    z = _noise(1, 8, 32)
    t = torch.arange(32 * 16) / SR
    target = rearrange(0.5 * torch.sin(2 * math.pi * 440 * t), "t -> 1 1 t")
    loss_fn = MultiScaleMelLoss(SR, **SMALL_SCALES)
    opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = loss_fn(gen(z), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
