"""What stops a run (an output directory that cannot take it, inputs that cannot be listed), and the one
line a bad file's error becomes."""

from __future__ import annotations

from ..errors import SpeechtokError, one_line


class PretokenizeError(SpeechtokError):
    """An output directory that cannot take this run (another tokenizer, another split, not writable), or inputs
    that cannot be listed (a missing manifest, missing listed files)."""


class MissingInputsError(PretokenizeError):
    """A manifest lists files that do not exist. `what` says how many and the first, without the hint, so that
    the CLI can name its own flags (--root, --skip-missing) where the message names Python's."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; pass root= or skip_missing=True")
        self.what = what


def error_line(e: BaseException, source: object = None) -> str:
    text = one_line(e)
    if source is not None and not isinstance(e, SpeechtokError):
        text = f"{type(e).__name__}: {text}"
    return text
