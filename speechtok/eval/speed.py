"""Speed of a tokenizer on one clip: encode and decode x-realtime through the API (`Tokenizer.encode` /
`decode`: input checks, resampling, chunking, `Codes`), beside the pure model forward on the same input
(`encoder` + `quantizer.encode`, `quantizer.decode` + `decoder`). The gap between the two is overhead.

x-realtime = seconds of audio per second of wall time (higher is faster). Each figure is the median of
`repeats` timed runs after one warm-up run, under `torch.inference_mode`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Speed", "measure_speed"]


@dataclass(frozen=True)
class Speed:
    audio_seconds: float
    batch: int
    n_q: int
    encode_xrt: float | None  # API (None: not measured)
    decode_xrt: float | None
    encode_forward_xrt: float | None  # pure model forward
    decode_forward_xrt: float | None
    repeats: int
    device: str
    threads: int


def measure_speed(tok, wav: Tensor | np.ndarray, sample_rate: int, n_q: int | None = None, repeats: int = 3,
                  parts: tuple[str, ...] = ("encode", "decode")) -> Speed:
    """Time `tok` on `wav` (`[T]`, `[C, T]` or `[B, C, T]` at `sample_rate`); `parts` says which of encode
    and decode (the others are None)."""
    from .. import audio

    n_q = tok.num_codebooks if n_q is None else n_q
    batch = audio.as_batch(wav)
    seconds = batch.shape[-1] / sample_rate
    x = audio.prepare(batch, sample_rate, tok.sample_rate).to(tok.device)  # [B, 1, T] at the model's rate
    x = x[..., : x.shape[-1] // tok.hop_length * tok.hop_length]  # whole frames for the bare forward
    codes = tok.encode(batch, sample_rate, n_q=n_q)
    tokens = codes.codes.to(tok.device)
    sync = _sync(tok.device)

    def forward_encode():
        tok.quantizer.encode(tok.encoder(x), n_q)

    def forward_decode():
        tok.decoder(tok.quantizer.decode(tokens))

    jobs = {"encode": lambda: tok.encode(batch, sample_rate, n_q=n_q), "encode_forward": forward_encode,
            "decode": lambda: tok.decode(codes), "decode_forward": forward_decode}
    audio_total = seconds * batch.shape[0]
    xrt: dict[str, float | None] = {}
    with torch.inference_mode():
        for key, fn in jobs.items():
            measured = key.split("_")[0] in parts
            xrt[key] = audio_total / max(_median_time(fn, repeats, sync), 1e-9) if measured else None
    return Speed(seconds, batch.shape[0], n_q, xrt["encode"], xrt["decode"], xrt["encode_forward"],
                 xrt["decode_forward"], repeats, str(tok.device), torch.get_num_threads())


def _median_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
