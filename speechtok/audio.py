"""Read, downmix, resample and validate audio (soundfile + soxr; no torchaudio).

Shapes: a waveform is `[T]`, `[C, T]` or `[B, C, T]`; `as_batch` turns all three into `[B, C, T]`.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import overload

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from .errors import AudioError, one_line

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")
MIN_SAMPLE_RATE = 1000  # Hz; a lower rate is a mistake (seconds or kHz passed for Hz), not speech
# Float audio is expected in [-1, 1]. A peak 4x (12 dB) over full scale is no clipped recording: it is integer PCM
# cast to float without scaling (peaks near 32768) or a gain applied twice; encoded, it gives saturated codes.
LOUD_PEAK = 4.0
TRUNCATION_SLACK_S = 0.05  # missing audio tolerated where the header's length may be an estimate (see read)
MAX_HEADER_CHUNKS = 64  # chunks scanned for a WAV's `data` or an AIFF's `COMM`

log = logging.getLogger(__name__)
_loud_warned = False  # warn_loud: once a process


def read(path: str | os.PathLike, allow_truncated: bool = False) -> tuple[np.ndarray, int]:
    """Read any file libsndfile reads -> (float32 array [C, T], sample rate). Raises AudioError.

    A file with fewer samples than its header declares (a cut download or copy) is an AudioError too, unless
    `allow_truncated`: then the samples that are there are returned, with a warning."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        with sf.SoundFile(str(path)) as f:
            frames, sr = f.frames, f.samplerate
            try:
                data = f.read(dtype="float32", always_2d=True)  # [T, C]
            except Exception as e:  # a compressed file cut short fails mid-way (FLAC: "decoder lost sync")
                data = _decodable_part(path, e, frames, sr, allow_truncated)
    except AudioError:
        raise
    except Exception as e:  # libsndfile's message says why (format, truncation)
        raise AudioError(f"{path}: unreadable audio ({one_line(e)})") from None
    wav = np.ascontiguousarray(data.T)  # [T, C] -> [C, T]
    check_finite(wav, source=path)
    _check_complete(path, wav.shape[-1], frames, sr, allow_truncated)  # first: "truncated" says more than "empty"
    if wav.shape[-1] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    return wav, int(sr)


def _decodable_part(path: Path, error: Exception, frames: int, sr: int, allow_truncated: bool) -> np.ndarray:
    """What decodes before the error of a file that fails mid-way [T, C]; with `allow_truncated` only, as for a
    cut WAV. The error says "truncated or corrupt": which one, a decoder cannot tell."""
    got = []
    with sf.SoundFile(str(path)) as f:
        try:
            while block := len(b := f.read(4096, dtype="float32", always_2d=True)):
                got.append(b[:block])
        except Exception:  # noqa: BLE001 - the same failure, further on
            pass
    data = np.concatenate(got) if got else np.zeros((0, 1), np.float32)
    what = (f"{path}: truncated or corrupt: decoding fails after {len(data) / sr:.2f} s of the {frames / sr:.2f} s "
            f"the header declares ({one_line(error)})")
    if not allow_truncated or not len(data):
        raise AudioError(what + ("" if allow_truncated else "; allow_truncated=True or --allow-truncated reads what "
                                                            "decodes"))
    return data  # _check_complete warns that it is short


def _check_complete(path: Path, got: int, frames: int, sr: int, allow_truncated: bool) -> None:
    """AudioError (or, allowed, a warning) when `got` samples are fewer than the header declares.

    libsndfile trims its frame count of a cut WAV, AIFF or W64 file to the bytes present, so for WAV and AIFF the
    header's own length is read here; for other formats its count is compared with what decoding gave, within
    TRUNCATION_SLACK_S (an MP3 without a length header has an estimated count)."""
    declared = _declared_frames(path)
    slack = 0 if declared is not None else int(TRUNCATION_SLACK_S * sr)
    declared = frames if declared is None else declared
    if got >= declared - slack:
        return
    what = (f"{path}: truncated: the header says {declared / sr:.2f} s ({declared} frames), {got / sr:.2f} s "
            f"({got}) present")
    if not allow_truncated:
        raise AudioError(f"{what} (allow_truncated=True or --allow-truncated reads what is there)")
    log.warning("%s; using what is there", what)


def _declared_frames(path: Path) -> int | None:
    """Sample frames a WAV (RIFF) or AIFF header declares; None for other formats, and for streamed WAVs that
    leave the data size 0 or 0xFFFFFFFF."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _riff_frames(f)
            if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                return _aiff_frames(f)
    except (OSError, struct.error):
        pass
    return None


def _riff_frames(f) -> int | None:
    """`data` chunk bytes // `fmt ` block align, read from the chunks after a RIFF/WAVE header."""
    block = None
    for _ in range(MAX_HEADER_CHUNKS):
        head = f.read(8)
        if len(head) < 8:
            return None
        cid, size = head[:4], struct.unpack("<I", head[4:])[0]
        if cid == b"fmt ":
            body = f.read(size)
            block = struct.unpack("<H", body[12:14])[0]
            f.seek(size & 1, 1)
        elif cid == b"data":
            streamed = size in (0, 0xFFFFFFFF)
            return None if streamed or not block else size // block
        else:
            f.seek(size + (size & 1), 1)  # chunks are padded to an even size
    return None


def _aiff_frames(f) -> int | None:
    """numSampleFrames of the COMM chunk (big-endian, after the channel count)."""
    for _ in range(MAX_HEADER_CHUNKS):
        head = f.read(8)
        if len(head) < 8:
            return None
        cid, size = head[:4], struct.unpack(">I", head[4:])[0]
        if cid == b"COMM":
            return struct.unpack(">I", f.read(6)[2:6])[0]
        f.seek(size + (size & 1), 1)
    return None


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
    try:
        with atomic_path(path) as tmp:  # a temp name has no extension, so the format is explicit
            with sf.SoundFile(str(tmp), "w", sample_rate, arr.shape[0], subtype=subtype, format=fmt) as f:
                f.software = WRITER_TAG  # tells speechtok's own outputs, which a rerun may replace, from recordings
                f.write(np.clip(arr.T, -1.0, 1.0))
    except sf.LibsndfileError as e:  # its "System error." of a full disk names no cause
        free = shutil.disk_usage(path.parent).free
        why = "no space left on the device" if free < arr.nbytes else one_line(e)
        raise AudioError(f"{path}: cannot write audio ({why})") from None


WRITER_TAG = "speechtok"


def written_by_speechtok(path: str | os.PathLike) -> bool:
    """Whether an audio file carries the tag `write` gives (a decoded file), so replacing it loses nothing."""
    try:
        with sf.SoundFile(str(path)) as f:
            return (f.software or "").startswith(WRITER_TAG)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality). `wav` [..., T] float32."""
    if sr_in == sr_out:
        return wav
    flat = wav.reshape(-1, wav.shape[-1])
    out = soxr.resample(flat.T, sr_in, sr_out, quality="HQ").T  # soxr wants [T, C]
    return np.ascontiguousarray(out.reshape(*wav.shape[:-1], -1), dtype=np.float32)


def sinc_resample(wav: Tensor, sr_in: int, sr_out: int, zero_crossings: int = 6, rolloff: float = 0.99) -> Tensor:
    """Resample along the last axis by a Hann-windowed sinc filter, as torchaudio's default `resample` computes it
    (for peers whose codes were made on its output; soxr's `resample` is the better filter otherwise).
    [..., T] -> [..., ceil(T * sr_out / sr_in)]."""
    if sr_in == sr_out:
        return wav
    g = math.gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g  # one output phase per `up`, the input advancing `down` samples a block
    cutoff = min(up, down) * rolloff
    reach = math.ceil(zero_crossings * down / cutoff)  # input samples the filter spans on each side
    taps = torch.arange(-reach, reach + down, dtype=torch.float64) / down
    phases = -torch.arange(up, dtype=torch.float64)[:, None] / up
    t = ((phases + taps) * cutoff).clamp(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernel = (sinc * window * cutoff / down).to(wav.dtype)[:, None]  # [up, 1, taps]
    flat = wav.reshape(-1, 1, wav.shape[-1])
    out = torch.nn.functional.conv1d(torch.nn.functional.pad(flat, (reach, reach + down)), kernel, stride=down)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, :math.ceil(up * wav.shape[-1] / down)]
    return out.reshape(*wav.shape[:-1], -1)


def loudness(wav: Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4) of [C, T] (C <= 5, in BS.1770's channel order): K-weighting
    (a +4 dB shelf above 1.5 kHz, a 38 Hz high-pass), 400 ms blocks every 100 ms, the -70 LUFS absolute and the
    -10 LU relative gates. NaN when shorter than one block or when every block is gated out. The filters' infinite
    impulse responses run as FIR filters (8192 taps, where they have decayed below 1e-12), by FFT."""
    block, step = int(0.4 * sample_rate), int(0.1 * sample_rate)
    if wav.shape[-1] < block:
        return math.nan
    kernel = torch.from_numpy(_k_weighting(sample_rate)).to(wav.device)
    n = 1 << math.ceil(math.log2(wav.shape[-1] + kernel.shape[-1]))
    weighted = torch.fft.irfft(torch.fft.rfft(wav.double(), n) * torch.fft.rfft(kernel, n), n)[..., : wav.shape[-1]]
    energy = weighted.pow(2).unfold(-1, block, step).mean(-1)  # [C, blocks]
    gains = torch.tensor([1.0, 1.0, 1.0, 1.41, 1.41], dtype=energy.dtype, device=energy.device)[: wav.shape[0], None]
    per_block = -0.691 + 10 * torch.log10((gains * energy).sum(0))
    kept = per_block > -70.0
    for _ in range(2):  # the absolute gate, then the relative one (10 LU under the absolutely gated loudness)
        if not kept.any():
            return math.nan
        gated = -0.691 + 10 * torch.log10((gains * energy[:, kept].mean(-1, keepdim=True)).sum())
        kept = kept & (per_block > gated - 10)
    return float(-0.691 + 10 * torch.log10((gains * energy[:, kept].mean(-1, keepdim=True)).sum()))


@functools.cache
def _k_weighting(sample_rate: int, taps: int = 8192) -> np.ndarray:
    """BS.1770's K-weighting at `sample_rate` (RBJ high shelf +4 dB at 1.5 kHz, Q 1/sqrt 2; RBJ high-pass at 38 Hz,
    Q 0.5) as its impulse response."""
    w = 2 * math.pi * 1500.0 / sample_rate
    a = 10 ** (4.0 / 40)
    alpha = math.sin(w) / 2 * math.sqrt(2)
    c = math.cos(w)
    shelf = ([a * ((a + 1) + (a - 1) * c + 2 * math.sqrt(a) * alpha), -2 * a * ((a - 1) + (a + 1) * c),
              a * ((a + 1) + (a - 1) * c - 2 * math.sqrt(a) * alpha)],
             [(a + 1) - (a - 1) * c + 2 * math.sqrt(a) * alpha, 2 * ((a - 1) - (a + 1) * c),
              (a + 1) - (a - 1) * c - 2 * math.sqrt(a) * alpha])
    w = 2 * math.pi * 38.0 / sample_rate
    alpha, c = math.sin(w) / (2 * 0.5), math.cos(w)
    highpass = ([(1 + c) / 2, -(1 + c), (1 + c) / 2], [1 + alpha, -2 * c, 1 - alpha])
    x = np.zeros(taps)
    x[0] = 1.0
    for b, den in (shelf, highpass):
        x = _biquad(x, np.array(b) / den[0], np.array(den) / den[0])
    return x


def _biquad(x: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, xi in enumerate(x):
        y[i] = b[0] * xi + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, xi, y1, y[i]
    return y


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


@overload
def downmix(wav: Tensor) -> Tensor: ...
@overload
def downmix(wav: np.ndarray) -> np.ndarray: ...
def downmix(wav: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """`[B, C, T]` -> `[B, 1, T]` by averaging the channels (a tensor or a float32 array)."""
    if wav.shape[1] == 1:
        return wav
    if isinstance(wav, Tensor):
        return wav.mean(dim=1, keepdim=True)
    return wav.mean(axis=1, keepdims=True, dtype=np.float32)


def check_finite(wav: Tensor | np.ndarray, source: object = "input") -> None:
    """NaN or inf samples are an AudioError (an empty `wav` has none)."""
    if (wav.numel() if isinstance(wav, Tensor) else wav.size) > 0:
        _finite_peaks(wav, source)


def check_level(wav: Tensor | np.ndarray, source: object = "input") -> None:
    """NaN or inf samples are an AudioError; a peak over LOUD_PEAK is a warning (`warn_loud`). `wav` non-empty."""
    hi, lo = _finite_peaks(wav, source)
    if max(hi, -lo) > LOUD_PEAK:
        warn_loud(max(hi, -lo), source)


def _finite_peaks(wav: Tensor | np.ndarray, source: object) -> tuple[float, float]:
    """(max, min) of a non-empty `wav`; AudioError where it holds NaN or inf. Two reductions and no boolean
    temporary (max and min carry NaN and inf through): on a tensor a quarter of `isfinite(...).all()`'s cost."""
    hi, lo = float(wav.max()), float(wav.min())
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    return hi, lo


def warn_loud(peak: float, source: object) -> None:
    """One warning a process: a corpus of unscaled files would otherwise log one line per file."""
    global _loud_warned
    if _loud_warned:
        return
    _loud_warned = True
    log.warning("%s: audio peaks at %.1f, %.0fx full scale (float audio is expected in [-1, 1]; integer PCM "
                "cast to float without scaling?); encoding it anyway (further loud inputs are not reported)",
                source, peak, peak)


def too_short(num_samples: int, sample_rate: int, min_samples: int, what: str = "frame") -> str | None:
    """The one-line reason `num_samples` cannot be encoded (fewer than one `what` of `min_samples`), or None."""
    if num_samples >= min_samples:
        return None
    return (f"audio too short: {num_samples} samples at {sample_rate} Hz; one {what} needs {min_samples} "
            f"({1000 * min_samples / sample_rate:g} ms)")


def check_sample_rate(sample_rate: object, source: object = "input") -> int:
    """`sample_rate` as an int; an AudioError unless it is a whole number of Hz, at least MIN_SAMPLE_RATE."""
    rate = _whole_number(sample_rate)
    if rate is None or rate < MIN_SAMPLE_RATE:
        raise AudioError(f"{source}: invalid sample rate {sample_rate!r}; expected a whole number of Hz, at least "
                         f"{MIN_SAMPLE_RATE} (e.g. 16000)")
    return rate


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):  # an Integral, but True Hz is a mistake
        return None
    if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    return None


def prepare(wav: Tensor | np.ndarray, sample_rate: int, target_rate: int, source: object = "input") -> Tensor:
    """Any waveform -> validated mono float32 `[B, 1, T]` at `target_rate`.

    CPU input is checked, downmixed and resampled in numpy: these are small memory-bound passes that torch's
    intra-op threads make slower, not faster (their spin-waits cost 40x the work here and take cores from a model
    running beside them)."""
    batch = as_batch(wav, source)
    if batch.shape[-1] == 0:
        raise AudioError(f"{source}: empty audio (0 samples)")
    sample_rate = check_sample_rate(sample_rate, source)
    if batch.device.type != "cpu":
        check_level(batch, source)
        mono = downmix(batch)
        if sample_rate == target_rate:
            return mono
        return torch.from_numpy(resample(mono.cpu().numpy(), sample_rate, target_rate)).to(batch.device)
    arr = batch.detach().numpy()
    check_level(arr, source)
    return torch.from_numpy(resample(downmix(arr), sample_rate, target_rate))


def load(path: str | os.PathLike, target_rate: int, allow_truncated: bool = False) -> Tensor:
    """Read a file and return validated mono `[1, 1, T]` at `target_rate` (`allow_truncated`: see `read`)."""
    wav, sr = read(path, allow_truncated=allow_truncated)
    return prepare(wav, sr, target_rate, source=path)


STREAM_BLOCK_FRAMES = 1 << 18  # frames a `stream` read takes from the file: 6-16 s at 16-44.1 kHz


def header_seconds(path: str | os.PathLike) -> float:
    """The duration a file's header gives (0.0 when it cannot be read: `read` then says why)."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - any unreadable file: the caller's `read` raises the AudioError
        return 0.0


def stream(path: str | os.PathLike, target_rate: int, allow_truncated: bool = False,
           block_frames: int | None = None) -> Iterator[np.ndarray]:
    """Read a file block by block -> validated mono float32 blocks [n] at `target_rate`, holding one block at a
    time. Concatenated, the blocks are bit for bit the samples of `load` (the same downmix; a soxr stream gives
    what one soxr call gives), and its errors are `read`'s: a bad block raises when it is reached."""
    path, block_frames = Path(path), block_frames or STREAM_BLOCK_FRAMES
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # noqa: BLE001 - libsndfile's message says why
        raise AudioError(f"{path}: unreadable audio ({one_line(e)})") from None
    with f:
        sr, frames = check_sample_rate(f.samplerate, path), f.frames
        resampler = None if sr == target_rate else soxr.ResampleStream(sr, target_rate, 1, quality="HQ")
        got = 0
        while True:
            block = _read_block(f, block_frames, path)  # [C, n]
            last = block.shape[-1] < block_frames
            got += block.shape[-1]
            if block.shape[-1]:
                check_level(block, source=path)
            mono = downmix(block[None])[0, 0]  # as `prepare` downmixes [1, C, T]: channel by channel, in order
            if resampler is not None:  # soxr wants [T, 1]; `last` flushes its filter's tail
                mono = np.ascontiguousarray(resampler.resample_chunk(mono[:, None], last=last)[:, 0])
            if mono.size:
                yield mono
            if last:
                break
    if got == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    _check_complete(path, got, frames, sr, allow_truncated)


def _read_block(f: sf.SoundFile, frames: int, path: Path) -> np.ndarray:
    """Up to `frames` frames from an open file -> float32 [C, n] (n < frames at the end)."""
    try:
        data = f.read(frames, dtype="float32", always_2d=True)  # [n, C]
    except Exception as e:  # noqa: BLE001 - a cut or corrupt file fails mid-way
        raise AudioError(f"{path}: unreadable audio ({one_line(e)})") from None
    return np.ascontiguousarray(data.T)


def _to_numpy(wav: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(wav, Tensor):
        return wav.detach().float().cpu().numpy()
    return np.asarray(wav, dtype=np.float32)
