"""Process-level performance settings: the CLI applies them at start-up; a library call never does (a program
that encodes batches through the Python API opts in with `speechtok.tune_malloc()`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap instead of unmapping it (once per process).

    glibc serves blocks over 32 MiB with a fresh mmap and unmaps them on free, so every large activation is
    page-faulted and zeroed again on every forward pass: our encoder ran 3x slower at batch 8 (52x against
    157x real time on 2 cores). The price: the heap keeps its peak and fragments when shapes vary (200 s CPU
    batches of varying length grew it to 10 GB; `pretokenize` uses 50 s on the CPU for that). The CLI calls
    this; Python programs opt in (`speechtok.tune_malloc()`); `SPEECHTOK_MALLOC=system` opts out. Returns False
    where nothing was changed (opted out, or not glibc: macOS, musl).
    """
    libc = _glibc()
    if os.environ.get("SPEECHTOK_MALLOC", "").lower() == "system" or libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    return libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the OS (glibc `malloc_trim`); False where there is nothing to call.

    With `tune_malloc` a process keeps the peak of its activations (GBs after large CPU batches). Forked
    DataLoader workers share those pages copy-on-write, so the parent's next forward pass copies every page it
    reuses, doubling the memory and slowing the pass: `pretokenize` calls this before it forks its workers.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
