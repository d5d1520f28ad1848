"""What every peer adapter shares: a `Tokenizer` around another package's model, spec parsing (`PATH?q=N`), and
safe reading of official checkpoint files (`weights_only=True`, or the safetensors `speechtok convert` writes).

A peer model is split into the chain of DESIGN.md (encoder -> quantizer -> decoder) by four small functions, so
`Tokenizer.encode` / `decode` (resampling, checks, `Codes`) and the speed benchmark's bare forward work unchanged.
Peers are never chunked (whole file in one pass), and none of them takes a padding mask that makes its codes
independent of the batch, so the items of a padded batch are encoded one by one (`batching` in `info`).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..codecs.base import ONE_PASS, PER_ITEM, Encoder
from ..errors import CheckpointError, CodesError, SpeechtokError
from ..fileio import read_json, read_state  # noqa: F401  (re-exported for the adapters)
from ..quantizers.base import QuantizeOut, Quantizer
from ..registry import split_spec
from ..tokenizer import Tokenizer
from ..vocoders.base import Decoder

PER_ITEM_NOTE = "per item: the peer has no padding mask, so a padded batch is encoded one item at a time"


class PeerPackageMissing(SpeechtokError, ImportError):
    """The package that implements a peer tokenizer is not installed."""


def require(module: str, extra: str, spec: str) -> Any:
    """Import the peer's package on first use; a clear error names the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise PeerPackageMissing(f"{spec}: needs the `{module.split('.')[0]}` package ({e}); "
                                 f"pip install 'speechtok[{extra}]'") from None


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# -- specs and files --------------------------------------------------------------------------------------------


def parse_spec(spec: str | None, peer: str) -> tuple[Path, dict[str, str]]:
    """`/path/to/checkpoint?q=8` -> (path, {"q": "8"}). A local path: fetching by name is the zoo's
    (`adapters/zoo.py`: `speechtok.load("mimi")`)."""
    if not spec:
        raise CheckpointError(f"{peer}: give the checkpoint's local path, e.g. speechtok.load('{peer}:/path/to/it'), "
                              "or a zoo name (speechtok list)")
    text, options = split_spec(spec)
    path = Path(text).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory ({peer} checkpoints are loaded from local paths)")
    return path, options


def single_file(path: Path, suffixes: tuple[str, ...], what: str, prefix: str = "") -> Path:
    """`path` itself when it is a file; else the one file in the directory named `prefix*` with one of
    `suffixes` (a CheckpointError naming what was found otherwise)."""
    if path.is_file():
        return path
    found = sorted(p for p in path.iterdir() if p.name.startswith(prefix) and p.suffix in suffixes)
    if len(found) != 1:
        raise CheckpointError(f"{path}: expected one {what}, found {[p.name for p in found] or 'none'}")
    return found[0]


def int_option(options: dict[str, str], key: str, spec: str) -> int | None:
    if key not in options:
        return None
    try:
        return int(options[key])
    except ValueError:
        raise CheckpointError(f"{spec}: option {key}={options[key]!r} is not an integer") from None


def load_weights(model: nn.Module, state: dict, path: Path) -> None:
    """strict load_state_dict with a one-line CheckpointError naming the file."""
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(f"{path}: weights do not fit the model ({' '.join(lines[1:3])[:300]})") from None


# -- the tokenizer ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerConfig:
    """The identity of a peer architecture: what `config_hash` hashes, so codes find the model that made them."""

    peer: str  # "encodec", "dac", "mimi", "snac", "speechtokenizer"
    variant: str  # the package and format, e.g. "encodec-package", "transformers"
    sample_rate: int
    hop_length: int
    num_codebooks: int  # Q this tokenizer exposes (a selected Q may be below the checkpoint's)
    codebook_size: int
    arch: str  # the peer's own architecture config, canonical JSON


@dataclass(frozen=True)
class PeerParts:
    """How a peer model runs as encoder -> quantizer -> decoder. Each function gets the peer model first."""

    encode: Callable[[nn.Module, Tensor], Tensor]  # wav [B, 1, T] -> latents [B, D, T_frames]
    quantize: Callable[[nn.Module, Tensor, int], Tensor]  # latents, n_q -> codes [B, n_q, T_frames]
    dequantize: Callable[[nn.Module, Tensor], Tensor] | None = None  # codes [B, q, T_frames] -> latents
    decode: Callable[[nn.Module, Tensor], Tensor] | None = None  # latents -> wav [B, 1, T_samples]; None: encode-only
    # samples [B] -> frames [B], where the peer's rule is not ceil(T / hop) (a mel front end that drops frames)
    num_frames: Callable[[Tensor], Tensor] | None = None
    min_samples: int | None = None  # the shortest input that gives one frame, where it is not one hop


class _PeerPart:
    """A part holds the peer model unregistered: the tokenizer owns it once (`tok.peer`), so its parameters and
    state dict are not listed three more times."""

    @property
    def model(self) -> nn.Module:
        return self._peer[0]


class _PeerEncoder(_PeerPart, Encoder):
    batching = PER_ITEM  # no padding mask: a padded batch item by item
    windows = ONE_PASS  # chunking is exact only for some peers: the whole file in one pass

    def __init__(self, model: nn.Module, fn: Callable, hop_length: int, dim: int,
                 num_frames: Callable[[Tensor], Tensor] | None = None, min_samples: int | None = None):
        super().__init__()
        self._peer, self._fn, self.hop_length, self.dim = (model,), fn, hop_length, dim
        self._frames, self._min_samples = num_frames, min_samples

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self._fn(self.model, wav)

    @property
    def receptive_field(self) -> int:
        return sys.maxsize  # never chunked

    @property
    def min_samples(self) -> int:
        return self._min_samples or self.hop_length

    def num_frames(self, num_samples: Tensor) -> Tensor:
        rule = self._frames
        return super().num_frames(num_samples) if rule is None else rule(torch.as_tensor(num_samples))


class _PeerQuantizer(_PeerPart, Quantizer):
    def __init__(self, model: nn.Module, quantize: Callable, dequantize: Callable, num_codebooks: int,
                 codebook_size: int):
        super().__init__()
        self._peer, self._quantize, self._dequantize = (model,), quantize, dequantize
        self.num_codebooks, self.codebook_size = num_codebooks, codebook_size

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizeOut:
        codes = self.encode(z)
        return QuantizeOut(self.decode(codes), codes)

    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        return self._quantize(self.model, z, n_q or self.num_codebooks).long()

    def decode(self, codes: Tensor) -> Tensor:
        if self._dequantize is None:
            raise CodesError("this peer tokenizer is encode-only: its codes have no decoder")
        return self._dequantize(self.model, codes)


class _PeerDecoder(_PeerPart, Decoder):
    def __init__(self, model: nn.Module, fn: Callable, hop_length: int):
        super().__init__()
        self._peer, self._fn, self.hop_length = (model,), fn, hop_length

    def forward(self, z_q: Tensor) -> Tensor:
        return self._fn(self.model, z_q)

    @property
    def receptive_field_frames(self) -> int:
        return sys.maxsize  # never chunked


def peer_tokenizer(model: nn.Module, parts: PeerParts, cfg: PeerConfig, *, dim: int, checkpoint: dict, package: str,
                   device: str | torch.device | None = None, pad_to_hop: bool = False,
                   codebook_rates: list[float] | None = None, segments: tuple[int, int] | None = None,
                   normalize_segments: bool = True, notes: str = "", codebook_sizes: list[int] | None = None
                   ) -> Tokenizer:
    """Another package's codec behind the speechtok API, in eval mode on `device`. `pad_to_hop`: the peer does not
    pad to whole frames itself. `codebook_rates`: codebooks that repeat their codes on the grid (SNAC).
    `segments` = (length, stride): the peer encodes fixed, slightly overlapping segments, each divided by its RMS
    unless not `normalize_segments` (the 48 kHz EnCodec: see `Tokenizer._segments`). `codebook_sizes`: each
    codebook's size where they differ (DualCodec; `cfg.codebook_size` is then the largest)."""
    encoder = _PeerEncoder(model, parts.encode, cfg.hop_length, dim, parts.num_frames, parts.min_samples)
    encoder.pad_to_frames = pad_to_hop
    if segments is not None:
        encoder.segments = {"length": int(segments[0]), "stride": int(segments[1])}
        encoder.normalize_segments = normalize_segments
    quantizer = _PeerQuantizer(model, parts.quantize, parts.dequantize, cfg.num_codebooks, cfg.codebook_size)
    if codebook_sizes is not None:
        quantizer.codebook_sizes = list(codebook_sizes)
    name = f"{cfg.peer}-{cfg.sample_rate // 1000}k-q{cfg.num_codebooks}"
    decoder = None if parts.decode is None else _PeerDecoder(model, parts.decode, cfg.hop_length)
    tok = Tokenizer(encoder, quantizer, decoder, sample_rate=cfg.sample_rate,
                    family=f"peer:{cfg.peer}", config=cfg, name=name, modules={"peer": model},
                    codebook_rates=codebook_rates, checkpoint=checkpoint, savable=False)
    tok.adapter_info = {
        "peer": cfg.peer, "format": cfg.variant, "package": package, "package_version": package_version(package),
        "checkpoint": checkpoint, "batching": PER_ITEM_NOTE, "chunking": "none: the whole file in one pass",
        **({"notes": notes} if notes else {}),
    }
    if segments is not None:
        tok.adapter_info["segments"] = (f"{segments[0]} samples every {segments[1]}, each normalised by its own gain "
                                        "(Codes.scales); decode cross-fades the overlaps")
    return tok.to(device or "cpu").eval()


def select_q(options: dict[str, str], spec: str, total: int) -> int:
    """`?q=N` exposes the first N of the checkpoint's `total` codebooks (default: all)."""
    q = int_option(options, "q", spec)
    if q is None:
        return total
    if not 1 <= q <= total:
        raise CheckpointError(f"{spec}: q={q} is out of range 1..{total}")
    return q


HF_VOLATILE = ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype")


def arch_json(config: dict) -> str:
    """A Hugging Face config.json without the keys that change with the library version, canonical JSON."""
    return canonical({k: v for k, v in config.items() if k not in HF_VOLATILE})


def hf_files(path: Path) -> list[Path]:
    """The files of a Hugging Face model directory that decide its behaviour: config and weights."""
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not weights:
        raise CheckpointError(f"{path}: no model.safetensors (or pytorch_model.bin) beside config.json")
    return [path / "config.json", *weights]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
