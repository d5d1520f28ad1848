"""Windows of files read, downmixed, resampled and batched: ahead by DataLoader workers (accelerators) or
between forward passes by as many threads as torch uses (CPU); see the package doc."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import DataLoader, Dataset

from .. import audio
from ..runtime.memory import release_free_memory
from ..runtime.prefetch import prefetch
from ..tokenizer import Tokenizer
from .batching import Bucketer, Loaded, Window
from .errors import error_line
from .shards import Shard


class AudioFiles(Dataset):
    """files[i] -> `Loaded`: read, downmixed, resampled; any error is caught and returned (a bad file is the
    file's problem, not the run's)."""

    def __init__(self, paths: Sequence[str], sample_rate: int, allow_truncated: bool = False) -> None:
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.allow_truncated = allow_truncated

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Loaded:
        path = self.paths[index]
        try:
            wav, sr = audio.read(path, allow_truncated=self.allow_truncated)  # [C, T]
            mono = audio.prepare(wav, sr, self.sample_rate, source=path)[0, 0]  # [T]
            return Loaded(index, mono, wav.shape[-1] / sr)
        except Exception as e:  # noqa: BLE001 - whatever a file does to the reader, it is skipped
            return Loaded(index, None, 0.0, error_line(e, path))


def read_windows(tok: Tokenizer, shards: list[Shard], paths: list[str], bucket_size: int, batch_seconds: float,
             max_batch_size: int, num_workers: int, read_ahead: bool, allow_truncated: bool = False
             ) -> Iterator[tuple[Shard, Window]]:
    """(shard, window) for every window of `bucket_size` consecutive items of each shard, in order, read and
    batched ahead by DataLoader workers, or between forward passes (see the module doc). Sets each shard's
    `windows_left`."""
    windows: list[list[int]] = []
    owner: list[Shard] = []
    for shard in shards:
        chunks = [list(shard.indices[a : a + bucket_size]) for a in range(0, len(shard.ids), bucket_size)]
        shard.windows_left = len(chunks)
        windows += chunks
        owner += [shard] * len(chunks)
    if not windows:
        return
    files = AudioFiles(paths, tok.sample_rate, allow_truncated)
    bucketer = Bucketer(tok.sample_rate, tok.hop_length, int(batch_seconds * tok.sample_rate), max_batch_size,
                        tok.encoder.min_samples, tok.encoder.frame_name)
    if not read_ahead:
        yield from zip(owner, read_between(files, bucketer, windows, torch.get_num_threads()))
        return
    loader = DataLoader(files, batch_sampler=windows, num_workers=num_workers, collate_fn=bucketer,
                        pin_memory=tok.device.type == "cuda")
    if num_workers:
        release_free_memory()  # before the fork: the workers must not share a warm heap copy-on-write
    # no workers: read in a thread, one window ahead (decoding and resampling release the GIL)
    yield from zip(owner, loader if num_workers else prefetch(loader))


def read_between(files: AudioFiles, bucketer: Bucketer, windows: list[list[int]], threads: int
                  ) -> Iterator[Window]:
    """Each window read by `threads` threads when the consumer asks for it, so that reading never competes with
    the consumer's own threads."""
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="speechtok-read")
    try:
        for window in windows:
            yield bucketer(list(pool.map(files.__getitem__, window)))
    finally:  # stopped early (an error, Ctrl-C): the window's files not yet started are not read
        pool.shutdown(cancel_futures=True)
