"""CREPE pitch tracking (Kim et al. 2018) through torchcrepe, the `tiny` model, as the F0 metric's tracker.

At 16 kHz (soxr HQ first), 10 ms hop, centred 1024-sample frames. F0: the periodicity-weighted mean of the
cents of the 9 bins around the most likely one (our decoder: torchcrepe's own ones add random dither to the
cents, which would make the metric differ run to run). Voiced: the periodicity, median-filtered over 3 frames
and set to 0 below -60 dB (A-weighted), is at least 0.21 (torchcrepe's suggested threshold).

Needs `pip install 'speechtok[judges]'` and `pip install --no-deps torchcrepe==0.0.24`. torchcrepe imports
torchaudio at import, for a file loader we never call; where torchaudio is missing or
broken, a stand-in module is put in its place for the import only.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types

import numpy as np
import torch

from .. import audio

__all__ = ["crepe_pitch", "torchcrepe_available", "crepe_weights_sha256", "CREPE_MODEL", "VOICING_THRESHOLD"]

RATE = 16000
HOP = 160
CREPE_MODEL = "tiny"
VOICING_THRESHOLD = 0.21
_CENTS_PER_BIN, _CENTS_BIN0 = 20.0, 1997.3794084376191  # torchcrepe's bin grid (bin 0 = 32.7 Hz)


@functools.cache
def _torchcrepe():
    try:
        importlib.import_module("torchaudio")
        return importlib.import_module("torchcrepe")
    except ImportError as e:
        if e.name == "torchcrepe":
            raise
    except OSError:  # torchaudio present but its compiled extension does not load (a CPU torch of another version)
        pass
    saved = sys.modules.get("torchaudio")
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # only torchcrepe.load.audio would use it
    try:
        return importlib.import_module("torchcrepe")
    finally:
        if saved is None:
            sys.modules.pop("torchaudio", None)
        else:
            sys.modules["torchaudio"] = saved


def crepe_weights_sha256() -> str | None:
    from pathlib import Path

    from .versions import file_sha256

    path = Path(_torchcrepe().__file__).parent / "assets" / f"{CREPE_MODEL}.pth"
    return file_sha256(path) if path.is_file() else None


def torchcrepe_available() -> bool:
    try:
        _torchcrepe()
        return True
    except ImportError:
        return False


def _decode(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B, 360, frames] (bins outside [fmin, fmax] at -inf) -> (bins [B, frames], Hz [B, frames]):
    deterministic local weighted mean around the argmax."""
    bins = logits.argmax(dim=1)  # [B, frames]
    offsets = torch.arange(-4, 5, device=logits.device)
    window = (bins[:, None, :] + offsets[None, :, None]).clamp(0, logits.shape[1] - 1)  # [B, 9, frames]
    inside = (bins[:, None, :] + offsets[None, :, None] >= 0) & (bins[:, None, :] + offsets[None, :, None]
                                                                 < logits.shape[1])
    probs = torch.sigmoid(torch.gather(logits, 1, window)) * inside
    cents = _CENTS_PER_BIN * window.double() + _CENTS_BIN0
    mean = (cents * probs).sum(1) / probs.sum(1).clamp(min=1e-12)
    return bins, (10.0 * 2.0 ** (mean / 1200.0)).float()


class _Conv1dCrepe(torch.nn.Module):
    """torchcrepe's CREPE network with its (k, 1) Conv2d / MaxPool2d layers run as Conv1d / MaxPool1d: the same
    arithmetic (probabilities within 1e-6 of torchcrepe's), about twice as fast on a CPU, where oneDNN's 2-d
    convolution handles a width-1 kernel poorly."""

    def __init__(self, crepe: torch.nn.Module) -> None:
        super().__init__()
        self.crepe = crepe

    def forward(self, frames: torch.Tensor, embed: bool = False) -> torch.Tensor:
        import torch.nn.functional as F

        c, x = self.crepe, frames[:, None, :]
        for i in range(1, 7):
            conv, norm = getattr(c, f"conv{i}"), getattr(c, f"conv{i}_BN")
            x = F.pad(x, (254, 254) if i == 1 else (31, 32))
            x = F.relu(F.conv1d(x, conv.weight[..., 0], conv.bias, stride=conv.stride[0]))
            x = F.max_pool1d(F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0,
                                          norm.eps), 2, 2)
            if embed and i == 5:
                return x[..., None]
        return torch.sigmoid(c.classifier(x.permute(0, 2, 1).reshape(-1, c.in_features)))


@functools.cache
def _network():
    """torchcrepe with its tiny model loaded once and swapped for the Conv1d form (torchcrepe's `infer` runs
    whatever `infer.model` holds while `infer.capacity` names the model asked for)."""
    tc = _torchcrepe()
    tc.load.model("cpu", CREPE_MODEL)
    tc.infer.model = _Conv1dCrepe(tc.infer.model).eval()
    return tc


def crepe_pitch(wav: np.ndarray, sample_rate: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """wav [T] -> (f0 [frames] in Hz, NaN where unvoiced; voiced [frames] bool), frames = T_16k // 160 + 1."""
    tc = _network()
    wav = audio.resample(np.asarray(wav, dtype=np.float32).reshape(-1), sample_rate, RATE)
    batch = torch.from_numpy(np.ascontiguousarray(wav))[None]
    with torch.inference_mode():
        f0, periodicity = tc.predict(batch, RATE, HOP, fmin, fmax, model=CREPE_MODEL, decoder=_decode,
                                     return_periodicity=True, batch_size=512, device="cpu")
        periodicity = tc.filter.median(periodicity, 3)
        periodicity = tc.threshold.Silence(-60.0)(periodicity, batch, RATE, HOP)
    voiced = (periodicity[0] >= VOICING_THRESHOLD).numpy()
    f0 = f0[0].double().numpy()
    return np.where(voiced, f0, np.nan), voiced
