"""Read, downmix, resample and validate audio (soundfile + soxr; no torchaudio).

Shapes: a waveform is `[T]`, `[C, T]` or `[B, C, T]`; `as_batch` turns all three into `[B, C, T]`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from .errors import AudioError, one_line

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")


def read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile reads -> (float32 array [C, T], sample rate). Raises AudioError."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except Exception as e:  # libsndfile's message says why (format, truncation)
        raise AudioError(f"{path}: unreadable audio ({one_line(e)})") from None
    wav = np.ascontiguousarray(data.T)  # [T, C] -> [C, T]
    check_finite(wav, source=path)
    if wav.shape[-1] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    return wav, int(sr)


def write(path: str | os.PathLike, wav: Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a mono or multichannel waveform `[T]` or `[C, T]` as 16-bit PCM, atomically."""
    from .fileio import atomic_path

    arr = _to_numpy(wav)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise AudioError(f"{path}: cannot write audio of shape {tuple(arr.shape)}; expected [T] or [C, T]")
    path = Path(path)
    fmt = path.suffix[1:].upper() or "WAV"
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: cannot write audio format {fmt!r}; use .wav or .flac")
    subtype = "PCM_16" if fmt in ("WAV", "FLAC", "AIFF") else None
    with atomic_path(path) as tmp:  # a temp name has no extension, so the format is explicit
        sf.write(str(tmp), np.clip(arr.T, -1.0, 1.0), sample_rate, subtype=subtype, format=fmt)


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality). `wav` [..., T] float32."""
    if sr_in == sr_out:
        return wav
    flat = wav.reshape(-1, wav.shape[-1])
    out = soxr.resample(flat.T, sr_in, sr_out, quality="HQ").T  # soxr wants [T, C]
    return np.ascontiguousarray(out.reshape(*wav.shape[:-1], -1), dtype=np.float32)


def as_batch(wav: Tensor | np.ndarray, source: object = "input") -> Tensor:
    """`[T]`, `[C, T]` or `[B, C, T]` float -> float32 tensor `[B, C, T]`. Raises AudioError on other shapes."""
    t = torch.as_tensor(wav) if not isinstance(wav, Tensor) else wav
    if not t.is_floating_point():
        raise AudioError(f"{source}: audio must be floating point, got {t.dtype}")
    if t.ndim == 1:
        t = t[None, None]
    elif t.ndim == 2:
        t = t[None]
    elif t.ndim != 3:
        raise AudioError(f"{source}: audio of shape {tuple(t.shape)}; expected [T], [C, T] or [B, C, T]")
    return t.float()


def downmix(wav: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """`[B, C, T]` -> `[B, 1, T]` by averaging the channels (a tensor or a float32 array)."""
    if wav.shape[1] == 1:
        return wav
    if isinstance(wav, Tensor):
        return wav.mean(dim=1, keepdim=True)
    return wav.mean(axis=1, keepdims=True, dtype=np.float32)


def check_finite(wav: Tensor | np.ndarray, source: object = "input") -> None:
    ok = torch.isfinite(wav).all() if isinstance(wav, Tensor) else np.isfinite(wav).all()
    if not bool(ok):
        raise AudioError(f"{source}: audio contains NaN or infinite samples")


def prepare(wav: Tensor | np.ndarray, sample_rate: int, target_rate: int, source: object = "input") -> Tensor:
    """Any waveform -> validated mono float32 `[B, 1, T]` at `target_rate`.

    CPU input is checked, downmixed and resampled in numpy: these are small memory-bound passes that torch's
    intra-op threads make slower, not faster (their spin-waits cost 40x the work here and take cores from a model
    running beside them)."""
    batch = as_batch(wav, source)
    if batch.shape[-1] == 0:
        raise AudioError(f"{source}: empty audio (0 samples)")
    if sample_rate != target_rate and sample_rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {sample_rate}")
    if batch.device.type != "cpu":
        check_finite(batch, source)
        mono = downmix(batch)
        if sample_rate == target_rate:
            return mono
        return torch.from_numpy(resample(mono.cpu().numpy(), sample_rate, target_rate)).to(batch.device)
    arr = batch.detach().numpy()
    check_finite(arr, source)
    return torch.from_numpy(resample(downmix(arr), sample_rate, target_rate))


def load(path: str | os.PathLike, target_rate: int) -> Tensor:
    """Read a file and return validated mono `[1, 1, T]` at `target_rate`."""
    wav, sr = read(path)
    return prepare(wav, sr, target_rate, source=path)


def _to_numpy(wav: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(wav, Tensor):
        return wav.detach().float().cpu().numpy()
    return np.asarray(wav, dtype=np.float32)
