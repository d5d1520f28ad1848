"""Progress of long work on stderr: a tqdm bar on a terminal, and off one (nohup, CI, a batch job's log) a plain
line every few seconds, where tqdm would print nothing (`disable=None`) or one endless line of carriage returns.

`progress(...)` takes tqdm's arguments and returns an object with tqdm's API (`update`, `total`,
`set_postfix_str`, `refresh`, `close`, iteration, `with`). `$SPEECHTOK_PROGRESS_SECONDS` sets the interval
between lines (default 5).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import IO, Any

from tqdm import tqdm

__all__ = ["progress", "INTERVAL_ENV"]

INTERVAL_ENV = "SPEECHTOK_PROGRESS_SECONDS"
DEFAULT_INTERVAL_S = 5.0
LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed} elapsed, {remaining} left, {rate_fmt}{postfix}]"


def progress(iterable: Any = None, *, desc: str, unit: str = "it", disable: bool = False,
             file: IO[str] | None = None, interval_s: float | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar when `file` (default stderr) is a terminal, else `LineProgress`; `disable` shows nothing."""
    file = sys.stderr if file is None else file
    if disable or _is_terminal(file):
        return tqdm(iterable, desc=desc, unit=unit, file=file, disable=disable, dynamic_ncols=True, **kwargs)
    interval_s = _interval_from_env() if interval_s is None else interval_s
    return LineProgress(iterable, desc=desc, unit=unit, out=file, interval_s=interval_s, **kwargs)


class LineProgress(tqdm):
    """tqdm's counting and rates, written as one line every `interval_s` seconds to `out`: no carriage returns,
    nothing for work shorter than one interval, and a last line at the end of work that printed any."""

    def __init__(self, iterable: Any = None, *, out: IO[str], interval_s: float, **kwargs: Any) -> None:
        self._out, self._interval_s, self._lines = out, interval_s, 0
        self._closing = self._done = False
        self._last_line_n = -1
        self._last_line_t = time.monotonic()  # no line at the start: short work stays silent
        kwargs.pop("dynamic_ncols", None)
        super().__init__(iterable, file=_Discard(), mininterval=interval_s, maxinterval=math.inf, miniters=1,
                         bar_format=LINE_FORMAT, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = time.monotonic()
        if self._done or (self._closing and (not self._lines or self.n == self._last_line_n)):
            return True
        if not self._closing and now - self._last_line_t < self._interval_s:
            return True
        self._last_line_t, self._last_line_n, self._lines = now, self.n, self._lines + 1
        self._out.write(f"speechtok: {self}\n")
        self._out.flush()
        return True

    def close(self) -> None:
        if self.disable:
            return
        self._closing = True
        self.display()
        self._done = True  # tqdm's own close displays once more: not another line
        super().close()


class _Discard:
    """Where tqdm's own output goes: LineProgress writes its lines itself."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: not a terminal
        return False


def _interval_from_env() -> float:
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S
