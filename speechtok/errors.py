"""The exceptions speechtok raises. Each message names the file (when there is one) and the problem."""

from __future__ import annotations


class SpeechtokError(Exception):
    """Base of every error speechtok raises on purpose."""


class AudioError(SpeechtokError, ValueError):
    """Audio that cannot be used: unreadable, empty, too short, non-finite or of the wrong shape."""


class CheckpointError(SpeechtokError):
    """A checkpoint directory that is missing a file, is corrupt, or has an unknown format."""


class CodesError(SpeechtokError, ValueError):
    """A codes file or tensor that does not fit the tokenizer it is given to."""


class ArgumentError(SpeechtokError, ValueError):
    """An argument out of its range (n_q, ...); a ValueError too, as it was before it had its own type."""


class OutputError(SpeechtokError):
    """An output that cannot or must not be written: the input itself, a codes file under an audio name, a
    directory that cannot be created."""


class UnknownTokenizerError(SpeechtokError, KeyError):
    """A tokenizer name that is neither bundled, nor registered by a plugin, nor a directory."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none), for logs and failure files."""
    return " ".join(str(e).split()) or type(e).__name__


def with_source(err: SpeechtokError, source: object) -> SpeechtokError:
    """The same error type with `source: ` in front, unless the message already names it."""
    msg = str(err)
    text = str(source)
    return type(err)(msg if msg.startswith(text) else f"{text}: {msg}")
