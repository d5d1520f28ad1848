"""Training data: manifests and directories of audio -> random fixed-length crops, batched reproducibly.

Sources are manifests (`.tsv` with a header that has a `path` column, or `.jsonl` with one object per line that
has a `path` key; optional `speaker`, `duration_s` (or `duration`), `split`, `text`), directories scanned
recursively, or one `.npy` file of crops written by `pack_crops`.

Every random choice is a pure function of the seed: the order of epoch e is `epoch_order(n, seed, e)` and the crop
of item i in epoch e starts at `crop_offset(T_i, segment, seed, e, i)`. The loaders pass `(epoch, index)` keys to
the dataset, so workers hold no epoch state, and a stream resumed at step k yields the batches an uninterrupted
stream yielded, whatever the number of workers. No global RNG is read or advanced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from ..audio import load
from ..corpora import Item, collect_items
from ..errors import AudioError
from ..fileio import atomic_path

log = logging.getLogger(__name__)

PCM_SCALE = 32768.0  # int16 <-> float32 as libsndfile reads 16-bit PCM, so 16-bit sources round-trip exactly

Key = int | tuple[int, int]  # a dataset key: an index, or (epoch, index)


@dataclass(frozen=True)
class DataConfig:
    """Where training audio comes from and how it is cut into crops.

    sources: manifest files (`.tsv`, `.jsonl`), directories (scanned recursively for audio), or a single `.npy`
        of packed crops (see `pack_crops`).
    root: the base of relative manifest paths. None tries the manifest's directory, then its parent (the shared
        data's `<set>/manifest.tsv` lists paths relative to its parent), and takes the first that holds the
        manifest's first relative path.
    splits: keep only manifest rows whose `split` is one of these; empty keeps all. Directories have no split
        labels and are taken whole.
    min_seconds: skip items whose known duration is shorter. None means `segment_seconds`; 0 keeps every item
        (items shorter than the segment are zero-padded). Items of unknown duration are kept.
    cache: keep decoded, resampled audio in RAM as int16 after its first read (decoding Opus every step is slow).
        Each worker process fills its own cache; `CropDataset.preload` fills it once before workers fork.
    crops_by_duration: an item gives floor(duration / segment) crops an epoch (at least one; one where the
        duration is unknown) instead of one, so that each corpus is heard in proportion to its hours, not to its
        count of files (one crop per file makes 5,000 short clips drown 351 long ones).
    """

    sources: tuple[str, ...]
    root: str | None = None
    splits: tuple[str, ...] = ()
    sample_rate: int = 16000
    segment_seconds: float = 1.0
    min_seconds: float | None = None
    cache: bool = True
    num_workers: int = 0
    crops_by_duration: bool = False

    def __post_init__(self) -> None:  # JSON and YAML give lists, and one source may come as a string
        for name in ("sources", "splits"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.sample_rate <= 0 or self.segment_samples <= 0:
            raise ValueError(f"DataConfig: sample_rate {self.sample_rate} and segment_seconds "
                             f"{self.segment_seconds} must give a positive segment length")
        if self.num_workers < 0:
            raise ValueError(f"DataConfig: num_workers must be >= 0, got {self.num_workers}")

    @property
    def segment_samples(self) -> int:
        return round(self.segment_seconds * self.sample_rate)

    @property
    def min_duration_s(self) -> float:
        return self.segment_seconds if self.min_seconds is None else self.min_seconds

    def items(self, skip_missing: bool = False) -> list[Item]:
        """Every item of `sources`, in source order, split-filtered, without items known to be too short."""
        return collect_items(self.sources, self.root, self.splits, self.min_duration_s, skip_missing)


# -- crops -----------------------------------------------------------------------------------------------------


def crop_offset(length: int, segment: int, seed: int, epoch: int, index: int) -> int:
    """Start of a `segment`-sample crop of `length` samples: uniform, a pure function of (seed, epoch, index)."""
    if length <= segment:
        return 0
    return int(np.random.default_rng([seed, epoch, index]).integers(0, length - segment + 1))


def crop(wav: np.ndarray, offset: int, segment: int) -> np.ndarray:
    """`wav` [T] -> [segment] from `offset`, zero-padded at the end when too short."""
    out = wav[offset:offset + segment]
    return out if len(out) == segment else np.pad(out, (0, segment - len(out)))


def to_pcm16(wav: np.ndarray) -> np.ndarray:
    """float [T] in [-1, 1] -> int16 [T] (clipped)."""
    return np.clip(np.rint(wav * PCM_SCALE), -32768, 32767).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> Tensor:
    """int16 [..., T] -> float32 tensor [..., T]."""
    return torch.from_numpy(pcm.astype(np.float32) / PCM_SCALE)


def _split_key(key: Key, epoch: int, n: int) -> tuple[int, int]:
    """(epoch, index in [0, n)) of a dataset key; IndexError out of range, as a Sequence does."""
    epoch, index = key if isinstance(key, tuple) else (epoch, key)
    if not -n <= index < n:
        raise IndexError(f"index {index} out of range for {n} items")
    return int(epoch), int(index) % n


class CropDataset(Dataset[Tensor]):
    """One random crop per item per epoch: `dataset[i]` -> float32 `[1, segment_samples]`.

    `dataset[i]` crops in the epoch `set_epoch` set; `dataset[(epoch, i)]` names it (the loaders here use that, so
    workers need no epoch state). Audio is read with `speechtok.audio.load` (mono, resampled to `sample_rate`)
    and held as int16, so crops do not depend on `cache`. A file that cannot be read is logged once and item i
    is served by the next readable item (still cropped with i's offset); AudioError if no item is readable.
    """

    def __init__(self, items: Sequence[Item], sample_rate: int, segment_samples: int, seed: int = 0,
                 cache: bool = True) -> None:
        self.items = list(items)
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.seed = seed
        self.cache = cache
        self.epoch = 0
        self._cache: dict[int, np.ndarray] = {}  # first index of a file -> int16 [T]
        first: dict[Path, int] = {}
        self._first = [first.setdefault(it.path, i) for i, it in enumerate(self.items)]  # a file listed twice
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, key: Key) -> Tensor:
        epoch, index = _split_key(key, self.epoch, len(self.items))
        return from_pcm16(self.crop_pcm16(index, epoch))[None]  # [1, segment]

    def crop_pcm16(self, index: int, epoch: int) -> np.ndarray:
        """The crop of item `index` in `epoch` as int16 [segment_samples]."""
        wav = self._readable(index)
        offset = crop_offset(len(wav), self.segment_samples, self.seed, epoch, index)
        return crop(wav, offset, self.segment_samples)

    def waveform(self, index: int) -> np.ndarray:
        """All of item `index` as int16 [T] at `sample_rate` (cached when `cache`). Raises AudioError."""
        key = self._first[index]
        pcm = self._cache.get(key)
        if pcm is None:
            pcm = to_pcm16(load(self.items[index].path, self.sample_rate)[0, 0].numpy())
            if self.cache:
                self._cache[key] = pcm
        return pcm

    def preload(self) -> None:
        """Read every item into the cache now, e.g. before DataLoader workers fork and share it."""
        if not self.cache:
            raise ValueError("preload needs cache=True")
        for index in dict.fromkeys(self._first):
            if index not in self._bad:
                try:
                    self.waveform(index)
                except AudioError as e:
                    self._mark_bad(index, e)

    def _readable(self, index: int) -> np.ndarray:
        """Item `index`'s waveform, or the next readable item's."""
        return self._readable_item(index)[1]

    def _readable_item(self, index: int) -> tuple[int, np.ndarray]:
        """(the item that serves `index`: itself or the next readable one, its waveform)"""
        n = len(self.items)
        for step in range(n):
            j = (index + step) % n
            if j in self._bad:
                continue
            try:
                return j, self.waveform(j)
            except AudioError as e:
                self._mark_bad(j, e)
        raise AudioError(f"none of the {n} training items is readable (first: {self.items[0].path})")

    def _mark_bad(self, index: int, err: AudioError) -> None:
        self._bad.add(index)
        log.warning("skipping unreadable training audio: %s", err)


class PackedCropDataset(Dataset[Tensor]):
    """Crops written by `pack_crops` (int16 `.npy` `[N, S]`, memory-mapped): `dataset[i]` -> float32 `[1, segment]`.

    With `segment_samples` None or S, item i is row i. With fewer, it is a random sub-crop of row i, drawn like
    CropDataset's from (seed, epoch, i). The file holds no sample rate: it is the one `pack_crops` was given.
    """

    def __init__(self, path: str | os.PathLike, segment_samples: int | None = None, seed: int = 0) -> None:
        self.path = Path(path)
        rows, width = self._open().shape
        self.num_rows = rows
        self.segment_samples = width if segment_samples is None else segment_samples
        if not 0 < self.segment_samples <= width:
            raise ValueError(f"{self.path}: crops of {width} samples cannot give "
                             f"{self.segment_samples}-sample segments")
        self.seed = seed
        self.epoch = 0

    def _open(self) -> np.ndarray:
        data = getattr(self, "_data", None)
        if data is None:
            try:
                data = np.load(self.path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise ValueError(f"{self.path}: not a crops .npy ({' '.join(str(e).split())})") from None
            if data.ndim != 2 or data.dtype != np.int16:
                raise ValueError(f"{self.path}: expected int16 [N, samples] crops, got {data.dtype} {list(data.shape)}")
            self._data = data
        return data

    def __getstate__(self) -> dict:  # workers re-open the memory map instead of receiving a copy
        return {k: v for k, v in self.__dict__.items() if k != "_data"}

    def __len__(self) -> int:
        return self.num_rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, key: Key) -> Tensor:
        epoch, index = _split_key(key, self.epoch, self.num_rows)
        row = self._open()[index]
        offset = crop_offset(len(row), self.segment_samples, self.seed, epoch, index)
        return from_pcm16(np.asarray(row[offset:offset + self.segment_samples]))[None]  # [1, segment]


def make_dataset(cfg: DataConfig, seed: int) -> CropDataset | PackedCropDataset:
    """The dataset `cfg` describes: packed crops for a single `.npy` source, else crops of the collected items."""
    if len(cfg.sources) == 1 and cfg.sources[0].lower().endswith(".npy"):
        return PackedCropDataset(Path(cfg.sources[0]).expanduser(), cfg.segment_samples, seed)
    items = cfg.items()
    if not items:
        raise ValueError(f"no training audio in {list(cfg.sources)} (splits {list(cfg.splits)}, "
                         f"at least {cfg.min_duration_s} s)")
    if cfg.crops_by_duration:
        items = [it for it in items for _ in range(crops_per_item(it, cfg.segment_seconds))]
    return CropDataset(items, cfg.sample_rate, cfg.segment_samples, seed, cfg.cache)


def crops_per_item(item: Item, segment_seconds: float) -> int:
    return max(1, int((item.duration_s or 0.0) // segment_seconds))


# -- order and loaders -----------------------------------------------------------------------------------------


def _mix(*values: int) -> int:
    """A 63-bit seed from several integers (seed 1, epoch 0 and seed 0, epoch 1 do not collide)."""
    return int(np.random.SeedSequence(list(values)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled item indices of `epoch`: a permutation of range(n), a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch))).tolist()


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """Batches of `(epoch, index)` keys: epoch `start_epoch` from its batch `skip` on, then the following epochs
    (`num_epochs` of them in all, or forever when None).

    Each epoch cuts `epoch_order(n, seed, epoch)` into batches of `batch_size`, dropping the last partial one;
    with `world_size` > 1, rank r takes every world_size-th index of the order, so ranks never share an item
    within an epoch and all have the same number of batches. Skipping costs no reads.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_epoch: int = 0, skip: int = 0,
                 num_epochs: int | None = None, rank: int = 0, world_size: int = 1) -> None:
        if batch_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"batch_size {batch_size} must be positive and rank {rank} in [0, {world_size})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_epoch, self.skip, self.num_epochs = start_epoch, skip, num_epochs
        self.rank, self.world_size = rank, world_size
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n} items make no batch of {batch_size}" +
                             (f" on each of {world_size} ranks" if world_size > 1 else ""))
        if not 0 <= skip < self.batches_per_epoch:
            raise ValueError(f"skip {skip} outside an epoch of {self.batches_per_epoch} batches")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.world_size // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, skip = self.start_epoch, self.skip
        while self.num_epochs is None or epoch < self.start_epoch + self.num_epochs:
            per_rank = self.n // self.world_size
            order = epoch_order(self.n, self.seed, epoch)[: per_rank * self.world_size][self.rank :: self.world_size]
            for b in range(skip, self.batches_per_epoch):
                yield [(epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]
            epoch, skip = epoch + 1, 0

    def __len__(self) -> int:
        if self.num_epochs is None:
            raise TypeError("an endless batch stream has no length")
        return self.num_epochs * self.batches_per_epoch - self.skip


_LOADER_SALT = 2**31  # keeps the loader's seed apart from every epoch's


def _loader(dataset: Dataset, cfg: DataConfig, seed: int, **kwargs: Any) -> DataLoader:
    # The DataLoader draws its workers' base seed from `generator` (the global RNG without one). Our datasets
    # draw nothing from torch's RNGs, so no worker_init_fn is needed.
    generator = torch.Generator().manual_seed(_mix(seed, _LOADER_SALT))
    return DataLoader(dataset, num_workers=cfg.num_workers, generator=generator, **kwargs)


def make_loader(cfg: DataConfig, batch_size: int, seed: int, epoch: int = 0, sampler: Sampler[int] | None = None,
                *, dataset: CropDataset | PackedCropDataset | None = None) -> DataLoader:
    """One epoch of batches `[B, 1, segment_samples]`, the last partial batch dropped.

    Without `sampler` the order is `epoch_order(len(dataset), seed, epoch)`, as in `batches`. A `sampler` of
    indices (e.g. DistributedSampler) replaces it; its `set_epoch(epoch)` is called when it has one. Pass
    `dataset` to reuse one (and its cache) across epochs; by default it is built from `cfg`.
    """
    ds = make_dataset(cfg, seed) if dataset is None else dataset
    if sampler is None:
        return _loader(ds, cfg, seed, batch_sampler=EpochBatches(len(ds), batch_size, seed, epoch, num_epochs=1))
    ds.set_epoch(epoch)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    return _loader(ds, cfg, seed, batch_size=batch_size, sampler=sampler, drop_last=True)


def batches(cfg: DataConfig, batch_size: int, seed: int, start_step: int = 0, *, rank: int = 0, world_size: int = 1,
            dataset: CropDataset | PackedCropDataset | None = None) -> Iterator[Tensor]:
    """Batches `[B, 1, segment_samples]` forever, epoch after epoch; step k is the k-th batch of the stream.

    Starting at `start_step` yields exactly what a stream from 0 yields from its step `start_step` on, without
    reading the skipped batches' audio: epoch = start_step // batches_per_epoch, then the rest of that epoch's
    order. With `world_size` > 1 each rank streams its own share of every epoch (see EpochBatches).
    """
    ds = make_dataset(cfg, seed) if dataset is None else dataset
    per_epoch = EpochBatches(len(ds), batch_size, seed, rank=rank, world_size=world_size).batches_per_epoch
    epoch, skip = divmod(start_step, per_epoch)
    sampler = EpochBatches(len(ds), batch_size, seed, epoch, skip, rank=rank, world_size=world_size)
    return iter(_loader(ds, cfg, seed, batch_sampler=sampler))


# -- packing ---------------------------------------------------------------------------------------------------


def pack_crops(cfg: DataConfig, out_path: str | os.PathLike, num_crops: int, seed: int,
               progress: bool = False) -> Path:
    """Write `num_crops` random crops of `cfg`'s items as one int16 `.npy` `[num_crops, segment_samples]`.

    Crops follow the epochs of `batches` (every item once per epoch, in `epoch_order`), so the file covers the
    items evenly; at `cfg.sample_rate`. Written atomically; read back with `PackedCropDataset`.
    """
    if num_crops <= 0:
        raise ValueError(f"num_crops must be positive, got {num_crops}")
    items = cfg.items()
    if not items:
        raise ValueError(f"no training audio in {list(cfg.sources)} to pack")
    ds = CropDataset(items, cfg.sample_rate, cfg.segment_samples, seed, cfg.cache)
    n, out = len(ds), Path(out_path)
    with atomic_path(out) as tmp:
        array = open_memmap(tmp, mode="w+", dtype=np.int16, shape=(num_crops, cfg.segment_samples))
        order: list[int] = []
        for k in tqdm(range(num_crops), desc=f"packing {out.name}", unit="crop", disable=not progress):
            epoch, b = divmod(k, n)
            if b == 0:
                order = epoch_order(n, seed, epoch)
            array[k] = ds.crop_pcm16(order[b], epoch)
        array.flush()
        del array
    return out
