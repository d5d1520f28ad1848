"""A conditional flow-matching (rectified flow) decoder: quantized latents -> a spectrum drawn from noise in N ODE
steps -> waveform through an inverse STFT.

What it generates: the complex STFT at the frame rate (n_fft = 4 x hop, the GAN decoder's own analysis), as real
and imaginary parts of the magnitude-compressed spectrum |X|^c e^{i phase} (RFWave's representation). Why this and
not a mel spectrogram followed by the GAN vocoder: the STFT is invertible, so one network and one inverse STFT give
the waveform, phase included, with no second model to train and no mel vocoder's errors on top of the flow's; the
frame-rate STFT is as cheap per ODE step as the GAN decoder's backbone (all the work runs at 50 frames/s). The
compression (c = 0.3) evens out the dynamic range, so that the flow's MSE does not spend itself on the few loudest
low-frequency bins.

The network is the GAN decoder's ConvNeXt backbone, fed the noisy spectrum and the conditioning latents, with the
flow time t added before every block. It predicts the clean spectrum x1 (`denoise`), and the velocity follows as
v = (x1_hat - x) / (1 - t): a backbone narrower than the spectrum (256 < 2 x 641 channels) cannot pass the noise
through, which predicting v = x1 - x0 directly would need. Sampling integrates dx/dt = v from t = 0 (Gaussian
noise) to t = 1 (the spectrum) with N uniform Euler or midpoint steps, N chosen at decode time (`steps`, `method`);
the last Euler step lands on the network's prediction, so no noise is left in the output. The
noise comes from a generator seeded by `seed`, drawn frame by frame ([T, C]) and shared by the items of a batch:
the same codes always decode to the same waveform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..layers import autocast_off
from ..layers.convnext import ConvNeXtBlock
from .base import Decoder
from .istft import ISTFT

METHODS = ("euler", "midpoint")  # evaluations of the network per step: 1 and 2


@dataclass(frozen=True)
class FlowConfig:
    input_dim: int = 128  # D of the quantized latents (the conditioning)
    dim: int = 256  # backbone width
    intermediate_dim: int = 768
    num_layers: int = 8
    kernel_size: int = 7
    n_fft: int = 1280  # 4 x hop, as the GAN decoder
    hop_length: int = 320
    compression: float = 0.3  # the spectrum is |X|^compression e^{i phase}
    feature_scale: float = 0.4  # compressed real and imaginary parts / this: about unit std on LS and SO train audio
    steps: int = 8  # ODE steps when decode names none
    method: str = "midpoint"  # "euler" or "midpoint", when decode names none
    seed: int = 0  # of the initial noise: the same codes always decode to the same waveform

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown ODE method {self.method!r}; known: {', '.join(METHODS)}")
        if self.steps < 1 or not 0 < self.compression <= 1 or self.feature_scale <= 0:
            raise ValueError(f"need steps >= 1, 0 < compression <= 1, feature_scale > 0; got steps={self.steps}, "
                             f"compression={self.compression}, feature_scale={self.feature_scale}")


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """t [B] in [0, 1] -> [B, dim] sinusoidal features (as diffusion models embed their time)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]  # t scaled to diffusion's usual 0..1000
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class FlowDecoder(Decoder):
    sampling_options = ("steps", "method")  # what `Tokenizer.decode` may choose per call

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.cfg = cfg
        self.hop_length = cfg.hop_length
        self.num_bins = cfg.n_fft // 2 + 1
        channels = 2 * self.num_bins  # real and imaginary parts
        self.embed_x = nn.Conv1d(channels, cfg.dim, 3, padding=1)
        self.embed_cond = nn.Conv1d(cfg.input_dim, cfg.dim, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_proj = nn.ModuleList(nn.Linear(cfg.dim, cfg.dim) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        scale = 1.0 / cfg.num_layers
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, cfg.kernel_size, scale) for _ in range(cfg.num_layers)
        )
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, channels)
        self.istft = ISTFT(cfg.n_fft, cfg.hop_length)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    # -- the representation -----------------------------------------------------------------------------

    def spectrum(self, wav: Tensor) -> Tensor:
        """wav [B, 1, T * hop] -> x [B, 2F, T]: the training target, framed as the inverse STFT expects (frame k
        centred on samples k * hop + hop / 2), so that `waveform(spectrum(wav))` gives back wav."""
        pad = self.istft.pad
        with autocast_off(wav):
            spec = torch.stft(F.pad(rearrange(wav, "b 1 t -> b t").float(), (pad, pad)), self.cfg.n_fft,
                              self.hop_length, window=self.window, center=False, return_complex=True)
            mag = spec.abs().clamp(min=1e-8)
            spec = spec * (mag ** (self.cfg.compression - 1))  # |X|^c, phase kept
            x = rearrange(torch.view_as_real(spec), "b f t two -> b (two f) t")
        return x / self.cfg.feature_scale

    def waveform(self, x: Tensor) -> Tensor:
        """x [B, 2F, T] -> wav [B, 1, T * hop]: the inverse of `spectrum`."""
        with autocast_off(x):
            re, im = rearrange(x.float() * self.cfg.feature_scale, "b (two f) t -> two b f t", two=2)
            spec = torch.complex(re, im)
            mag = spec.abs().clamp(min=1e-8)
            spec = spec * (mag ** (1.0 / self.cfg.compression - 1)).clamp(max=1e4)  # bounded for an untrained net
            return self.istft(spec).unsqueeze(1)

    # -- the velocity field -----------------------------------------------------------------------------

    def denoise(self, x: Tensor, t: Tensor, z_q: Tensor) -> Tensor:
        """x [B, 2F, T] (the spectrum at flow time t), t [B], z_q [B, D, T] -> the clean spectrum x1_hat [B, 2F, T]."""
        h = self.norm(rearrange(self.embed_x(x) + self.embed_cond(z_q), "b c t -> b t c"))
        h = rearrange(h, "b t c -> b c t")
        temb = self.time_mlp(timestep_embedding(t, self.cfg.dim).to(h.dtype))  # [B, C]
        for proj, block in zip(self.time_proj, self.blocks):
            h = block(h + proj(temb)[..., None])
        return rearrange(self.head(self.final_norm(rearrange(h, "b c t -> b t c"))), "b t c -> b c t")

    def velocity(self, x: Tensor, t: Tensor, z_q: Tensor) -> Tensor:
        """dx/dt [B, 2F, T] of the straight path from x (at time t [B], < 1) to the predicted spectrum."""
        return (self.denoise(x, t, z_q) - x) / (1.0 - t)[:, None, None]

    # -- sampling ---------------------------------------------------------------------------------------

    def noise(self, batch: int, frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """x0 [B, 2F, T]: seeded, drawn frame-major on the CPU, the same for every item of the batch."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        x0 = torch.randn(frames, 2 * self.num_bins, generator=gen)
        return rearrange(x0, "t c -> 1 c t").expand(batch, -1, -1).to(device=device, dtype=dtype)

    def sample(self, z_q: Tensor, steps: int, method: str) -> Tensor:
        """z_q [B, D, T] -> spectrum [B, 2F, T], integrated from noise over `steps` uniform steps of `method`."""
        if method not in METHODS:
            raise ValueError(f"unknown ODE method {method!r}; known: {', '.join(METHODS)}")
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        x = self.noise(z_q.shape[0], z_q.shape[-1], z_q.device, z_q.dtype)
        dt = 1.0 / int(steps)
        for i in range(int(steps)):
            t = z_q.new_full((z_q.shape[0],), i * dt)
            v = self.velocity(x, t, z_q)
            if method == "midpoint":
                v = self.velocity(x + 0.5 * dt * v, t + 0.5 * dt, z_q)
            x = x + dt * v
        return x

    def forward(self, z_q: Tensor, steps: int | None = None, method: str | None = None) -> Tensor:
        """z_q [B, D, T] -> wav [B, 1, T * hop_length]; `steps` and `method` default to the config's."""
        spec = self.sample(z_q, self.cfg.steps if steps is None else steps, method or self.cfg.method)
        return self.waveform(spec)

    @property
    def receptive_field_frames(self) -> int:
        """Per network evaluation: the input convs and one depthwise conv per block; the field grows with every
        evaluation of the default sampler. (Chunks also draw their own noise, so a chunked decode is another
        sample than one pass, not the same one.)"""
        per_eval = 1 + (self.cfg.kernel_size // 2) * (1 + self.cfg.num_layers)
        evals = self.cfg.steps * (2 if self.cfg.method == "midpoint" else 1)
        return per_eval * evals + self.cfg.n_fft // self.hop_length
