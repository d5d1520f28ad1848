"""`Codes`: integer tokens `[B, Q, T]` with their lengths, timing and the identity of the tokenizer that made them,
and their file formats (`.npy` + `.json` sidecar, `.pt`, `.safetensors`).

Codecs that encode fixed overlapping segments, each normalised by its own gain (the 48 kHz EnCodec), also give
`scales` [B, S]: one float per segment that decoding multiplies back. Their codes are the segments' frames one
after the other, and `tokenizer["segments"]` = {"length", "stride"} in samples says where each segment starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import CodesError
from .fileio import atomic_path

CODES_FORMAT_VERSION = 1
CODES_FORMATS = ("npy", "pt", "safetensors")


@dataclass
class Codes:
    codes: Tensor  # [B, Q, T] int64
    lengths: Tensor  # [B] valid frames of each item
    sample_rate: int  # of the tokenizer
    hop_length: int  # samples per frame
    num_samples: Tensor | None = None  # [B] valid samples at sample_rate (decode trims to them)
    offset: int = 0  # sample index of frame 0's start
    tokenizer: dict = field(default_factory=dict)  # name, family, config_hash
    scales: Tensor | None = None  # [B, S] float32 gain of each segment (segmented codecs only); 0 past an item's

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.codes.shape[1]

    @property
    def batch_size(self) -> int:
        return self.codes.shape[0]

    def stream(self, name: str) -> Tensor:
        """The codebooks of a named stream, e.g. `codes.stream("semantic")` of a hybrid tokenizer: [B, q, T]."""
        streams = self.tokenizer.get("streams") or {}
        if name not in streams:
            raise CodesError(f"these codes have no stream {name!r} (streams: {', '.join(streams) or 'none'})")
        start, stop = streams[name]
        return self.codes[:, start : min(stop, self.num_codebooks)]

    def frame_times(self) -> Tensor:
        """[T] start time in seconds of each frame (of the longest item, for segmented codes)."""
        frames = torch.arange(self.codes.shape[-1], dtype=torch.float64)
        segments = self.tokenizer.get("segments")
        if segments is None or self.num_samples is None:
            return (self.offset + frames * self.hop_length) / self.sample_rate
        starts = [start + f * self.hop_length
                  for start, n in segment_bounds(int(self.num_samples.max()), **segments)
                  for f in range(-(-n // self.hop_length))]
        return torch.tensor(starts[: len(frames)], dtype=torch.float64) / self.sample_rate

    def item(self, i: int) -> Codes:
        """Item i of the batch, trimmed to its length: [1, Q, lengths[i]]."""
        n = int(self.lengths[i])
        ns = None if self.num_samples is None else self.num_samples[i : i + 1]
        scales = None
        if self.scales is not None:
            count = len(segment_bounds(int(ns[0]), **self.tokenizer["segments"])) if ns is not None else None
            scales = self.scales[i : i + 1, :count]
        return replace(self, codes=self.codes[i : i + 1, :, :n], lengths=self.lengths[i : i + 1], num_samples=ns,
                       scales=scales)

    def metadata(self) -> dict:
        """What travels with a single item's codes in a file."""
        meta = {
            "format_version": CODES_FORMAT_VERSION,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "frame_rate": self.frame_rate,
            "offset": self.offset,
            "num_codebooks": self.num_codebooks,
            "tokenizer": self.tokenizer,
        }
        if self.num_samples is not None:
            meta["num_samples"] = int(self.num_samples[0])
        if self.scales is not None:  # float32 -> JSON float -> float32 is exact
            meta["segment_scales"] = [float(v) for v in self.scales[0].tolist()]
        return meta

    def save(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write item 0 as `[Q, T]` to `path` (format from `fmt` or the suffix), atomically. Returns the path."""
        if self.batch_size != 1:
            raise CodesError(f"{path}: a codes file holds one item; got a batch of {self.batch_size} (use .item(i))")
        path = Path(path)
        fmt = fmt or path.suffix.lstrip(".")
        if fmt not in CODES_FORMATS:
            raise CodesError(f"{path}: unknown codes format {fmt!r}; choose one of {', '.join(CODES_FORMATS)}")
        if path.suffix != f".{fmt}":  # `load` tells the format by the suffix: a .pt holding safetensors is lost
            raise CodesError(f"{path}: a {fmt} codes file must end in .{fmt} (the suffix says how to read it)")
        arr: np.ndarray = self.item(0).codes[0].cpu().numpy().astype(storage_dtype(self.tokenizer.get("codebook_size")))
        meta = self.metadata()
        if fmt != "npy":
            with atomic_path(path) as tmp:
                _WRITERS[fmt](tmp, arr, meta)
            return path
        # two files, both written in full before either replaces anything (a full disk fails here, clobbering
        # nothing), the sidecar renamed first; it names its codes, so a kill between the two renames leaves a
        # pair that is refused, or a sidecar without codes, never codes read with another file's metadata
        meta["codes_sha256"] = codes_digest(arr)
        with atomic_path(path) as tmp, atomic_path(sidecar(path)) as side_tmp:
            _WRITERS[fmt](tmp, arr, meta)
            side_tmp.write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Codes:
        """Read a codes file written by `save` (or a de-duplicated units file, its runs expanded). Raises
        CodesError naming the file and the problem."""
        path = Path(path)
        fmt = path.suffix.lstrip(".")
        if fmt not in CODES_FORMATS:
            raise CodesError(f"{path}: not a codes file (expected .npy, .pt or .safetensors)")
        if not path.is_file():
            raise CodesError(f"{path}: no such file")
        try:
            arr, meta = _READERS[fmt](path)
        except CodesError:
            raise
        except Exception as e:  # torch says "[Errno 22] Invalid argument" of a cut .pt: name the likely cause
            raise CodesError(f"{path}: corrupt or truncated {fmt} codes file, unreadable "
                             f"({' '.join(str(e).split())[:160]})") from None
        return cls._from_array(path, arr, meta)

    @classmethod
    def _from_array(cls, path: Path, arr: np.ndarray, meta: dict) -> Codes:
        if not isinstance(meta, dict):
            raise CodesError(f"{path}: corrupt metadata (a JSON object expected, got {type(meta).__name__})")
        if meta.get("format_version") != CODES_FORMAT_VERSION:
            raise CodesError(f"{path}: unsupported codes format_version {meta.get('format_version')!r}")
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise CodesError(f"{path}: codes must be an integer array [Q, T], got {arr.dtype} {arr.shape}")
        _check_metadata(path, meta, arr)
        codes = torch.from_numpy(arr.astype(np.int64))[None]
        ns = meta.get("num_samples")
        scales = meta.get("segment_scales")
        return cls(
            codes=codes, lengths=torch.tensor([codes.shape[-1]]), sample_rate=int(meta["sample_rate"]),
            hop_length=int(meta["hop_length"]), offset=int(meta.get("offset", 0)),
            num_samples=None if ns is None else torch.tensor([int(ns)]), tokenizer=dict(meta.get("tokenizer", {})),
            scales=None if scales is None else torch.tensor([scales], dtype=torch.float32),
        )


def codes_digest(arr: np.ndarray) -> str:
    """sha256 of codes [Q, T] as stored (dtype, shape, bytes): what a `.npy` sidecar names."""
    h = hashlib.sha256(f"{arr.dtype.str}:{list(arr.shape)};".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _check_metadata(path: Path, meta: dict, arr: np.ndarray) -> None:
    """The fields decode relies on, each of its type and range, and the sidecar's claim to these codes."""
    def positive_int(key: str, required: bool = True) -> None:
        value = meta.get(key)
        if value is None and not required:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CodesError(f"{path}: metadata {key} must be a positive integer, got {value!r}")

    positive_int("sample_rate")
    positive_int("hop_length")
    positive_int("num_samples", required=False)
    offset = meta.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise CodesError(f"{path}: metadata offset must be a non-negative integer, got {offset!r}")
    if not isinstance(meta.get("tokenizer", {}), dict):
        raise CodesError(f"{path}: metadata tokenizer must be an object, got {meta.get('tokenizer')!r}")
    digest = meta.get("codes_sha256")
    if digest is not None and digest != codes_digest(arr):
        raise CodesError(f"{path}: its metadata belongs to other codes (codes_sha256 differs): an interrupted "
                         "write or a copied sidecar; encode the audio again")
    ns, frames, hop = meta.get("num_samples"), arr.shape[-1], meta["hop_length"]
    segmented = isinstance(meta.get("tokenizer"), dict) and meta["tokenizer"].get("segments")
    if ns is not None and not segmented and abs(math.ceil(ns / hop) - frames) > 2:
        raise CodesError(f"{path}: metadata num_samples {ns} ({ns / meta['sample_rate']:.3f} s) does not fit "
                         f"{frames} frames of {hop} samples")


def segment_bounds(num_samples: int, length: int, stride: int) -> list[tuple[int, int]]:
    """(start, size) in samples of each segment of a segmented codec: one every `stride` samples while the start
    is inside the signal, each `length` long or cut by the signal's end."""
    return [(start, min(length, num_samples - start)) for start in range(0, num_samples, stride)]


def storage_dtype(codebook_size: int | None) -> type:
    """int16 holds codes below 32768; larger codebooks need int32."""
    return np.int16 if codebook_size is not None and codebook_size <= 32768 else np.int32


def sidecar(path: Path) -> Path:
    """`x.npy` -> `x.npy.json`: the metadata of a `.npy` codes file."""
    return path.with_name(path.name + ".json")


def _write_npy(tmp: Path, arr: np.ndarray, meta: dict) -> None:
    with open(tmp, "wb") as f:
        np.save(f, arr)


def _write_pt(tmp: Path, arr: np.ndarray, meta: dict) -> None:
    torch.save({"codes": torch.from_numpy(arr), "meta": json.dumps(meta)}, tmp)


def _write_safetensors(tmp: Path, arr: np.ndarray, meta: dict) -> None:
    from safetensors.torch import save_file

    save_file({"codes": torch.from_numpy(arr)}, str(tmp), metadata={"speechtok": json.dumps(meta)})


def _read_npy(path: Path) -> tuple[np.ndarray, dict]:
    side = sidecar(path)
    if not side.is_file():
        raise CodesError(f"{path}: missing metadata sidecar {side.name} (it says which tokenizer made the codes)")
    return np.load(path, allow_pickle=False), json.loads(side.read_text())


def _read_pt(path: Path) -> tuple[np.ndarray, dict]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # never runs code inside the file
    except pickle.UnpicklingError:
        raise CodesError(f"{path}: refused: not a speechtok codes file (it holds pickled objects that only a full "
                         "unpickle, which can run code inside the file, would read)") from None
    if not isinstance(obj, dict) or "codes" not in obj or "meta" not in obj:
        raise CodesError(f"{path}: not a speechtok codes file (no 'codes' and 'meta' entries)")
    return obj["codes"].numpy(), json.loads(obj["meta"])


def _read_safetensors(path: Path) -> tuple[np.ndarray, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = (f.metadata() or {}).get("speechtok")
        if meta is not None and json.loads(meta).get("deduplicated"):  # `speechtok encode --dedup`: runs expanded
            units, runs = f.get_tensor("units").numpy(), f.get_tensor("run_lengths").numpy()
            return np.repeat(units, runs)[None], json.loads(meta)
        if meta is None or "codes" not in f.keys():
            raise CodesError(f"{path}: not a speechtok codes file (no 'codes' tensor with speechtok metadata)")
        return f.get_tensor("codes").numpy(), json.loads(meta)


_WRITERS = {"npy": _write_npy, "pt": _write_pt, "safetensors": _write_safetensors}
_READERS = {"npy": _read_npy, "pt": _read_pt, "safetensors": _read_safetensors}
