"""How long work runs in this process: malloc tuning (`memory.py`, opt-in for library users), progress lines on
stderr (`progress.py`) and a read-ahead thread (`prefetch.py`). Imports no torch."""

from .memory import release_free_memory, tune_malloc

__all__ = ["release_free_memory", "tune_malloc"]
