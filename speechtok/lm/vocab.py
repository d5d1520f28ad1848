"""One id space for a speech LM: special tokens first, then each codebook's codes at its own offset.

    vocab = LMVocab(num_codebooks=8, codebook_size=1024, extra=("<sem>", "<ac>"))
    vocab.id(q, code)       # special_count + q * codebook_size + code
    vocab.code(token)       # -> (q, code), or None for a special token
    vocab.save("vocab.json"); LMVocab.load("vocab.json")   # round-trips

Codebooks get disjoint ranges so that one embedding table serves every codebook of a flattened stream and an id
says which codebook it belongs to. Codebooks of different sizes (DualCodec's 16384-code semantic codebook before
4096-code acoustic ones) get ranges of their own sizes: `LMVocab(8, 16384, codebook_sizes=(16384, 4096, ...))`,
written as format 2 (format 1 readers would misplace them).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from ..fileio import write_text

VOCAB_FORMAT_VERSION = 1
MIXED_SIZES_FORMAT_VERSION = 2
BASE_SPECIALS = ("<pad>", "<bos>", "<eos>")


@dataclass(frozen=True)
class LMVocab:
    num_codebooks: int
    codebook_size: int
    extra: tuple[str, ...] = ()  # user-named special tokens, after pad, bos and eos
    tokenizer: dict = field(default_factory=dict, compare=False)  # the identity of the codes' tokenizer
    codebook_sizes: tuple[int, ...] = ()  # each codebook's size where they differ; () = all codebook_size

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", tuple(self.extra))
        sizes = tuple(int(k) for k in self.codebook_sizes)
        object.__setattr__(self, "codebook_sizes", () if len(set(sizes)) <= 1 else sizes)
        if self.num_codebooks < 1 or self.codebook_size < 1:
            raise ArgumentError(f"LMVocab needs num_codebooks and codebook_size >= 1, got {self.num_codebooks} and "
                                f"{self.codebook_size}")
        if self.codebook_sizes and (len(sizes) != self.num_codebooks or max(sizes) != self.codebook_size
                                    or min(sizes) < 1):
            raise ArgumentError(f"LMVocab: codebook_sizes {list(sizes)} must give {self.num_codebooks} sizes >= 1, "
                                f"the largest {self.codebook_size}")
        names = self.specials
        if len(set(names)) != len(names):
            raise ArgumentError(f"LMVocab: special tokens repeat: {list(names)}")

    @property
    def specials(self) -> tuple[str, ...]:
        return BASE_SPECIALS + self.extra

    @property
    def pad(self) -> int:
        return 0

    @property
    def bos(self) -> int:
        return 1

    @property
    def eos(self) -> int:
        return 2

    def special(self, name: str) -> int:
        """The id of a special token by name (`<pad>`, `<bos>`, `<eos>` or one of `extra`)."""
        try:
            return self.specials.index(name)
        except ValueError:
            raise ArgumentError(f"no special token {name!r}; this vocabulary has {list(self.specials)}") from None

    @property
    def offset(self) -> int:
        """The first code id: codebook q's codes are `offset + q * codebook_size + code` (equal sizes)."""
        return len(self.specials)

    @functools.cached_property
    def sizes(self) -> np.ndarray:
        """[num_codebooks] each codebook's size."""
        return np.asarray(self.codebook_sizes or [self.codebook_size] * self.num_codebooks, dtype=np.int64)

    @functools.cached_property
    def starts(self) -> np.ndarray:
        """[num_codebooks] each codebook's first id."""
        return self.offset + np.concatenate([[0], np.cumsum(self.sizes)[:-1]])

    @property
    def size(self) -> int:
        return self.offset + int(self.sizes.sum())

    def ids(self, codes: np.ndarray, first_codebook: int = 0) -> np.ndarray:
        """codes [q, T] (codebooks first_codebook.. of a tokenizer) -> ids [q, T] (int64)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or first_codebook + codes.shape[0] > self.num_codebooks:
            raise ArgumentError(f"codes of shape {list(codes.shape)} from codebook {first_codebook} do not fit a "
                                f"vocabulary of {self.num_codebooks} codebooks")
        rows = slice(first_codebook, first_codebook + codes.shape[0])
        sizes = self.sizes[rows, None]
        if codes.size and (codes.min() < 0 or (codes >= sizes).any()):
            raise ArgumentError(f"codes out of range [0, {self.codebook_size}): {codes.min()}..{codes.max()}"
                                + (f" (codebook sizes {self.sizes[rows].tolist()})" if self.codebook_sizes else ""))
        return self.starts[rows, None] + codes

    def codes(self, ids: np.ndarray, first_codebook: int = 0) -> np.ndarray:
        """ids [q, T] -> codes [q, T]; an id of another codebook (or a special) is an error."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = slice(first_codebook, first_codebook + ids.shape[0])
        codes = ids - self.starts[rows, None]
        if codes.size and (codes.min() < 0 or (codes >= self.sizes[rows, None]).any()):
            raise ArgumentError("ids do not belong to the codebooks their positions say (a special token, or an id "
                                "of another codebook, where a code should be)")
        return codes

    def codebook_of(self, ids: np.ndarray) -> np.ndarray:
        """Each id's codebook (-1 for special tokens)."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(ids >= self.offset, np.searchsorted(self.starts, ids, side="right") - 1, -1)

    def to_dict(self) -> dict:
        mixed = {"codebook_sizes": list(self.codebook_sizes)} if self.codebook_sizes else {}
        return {"format_version": MIXED_SIZES_FORMAT_VERSION if mixed else VOCAB_FORMAT_VERSION,
                "num_codebooks": self.num_codebooks, "codebook_size": self.codebook_size, **mixed,
                "specials": list(self.specials), "offset": self.offset, "size": self.size, "tokenizer": self.tokenizer}

    def save(self, path: str | os.PathLike) -> Path:
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict) -> LMVocab:
        if data.get("format_version") not in (VOCAB_FORMAT_VERSION, MIXED_SIZES_FORMAT_VERSION):
            raise ArgumentError(f"unsupported vocab format_version {data.get('format_version')!r}")
        specials = tuple(data["specials"])
        if specials[: len(BASE_SPECIALS)] != BASE_SPECIALS:
            raise ArgumentError(f"a vocabulary's specials start with {list(BASE_SPECIALS)}, got {list(specials)}")
        vocab = cls(int(data["num_codebooks"]), int(data["codebook_size"]), specials[len(BASE_SPECIALS):],
                    dict(data.get("tokenizer") or {}), tuple(data.get("codebook_sizes") or ()))
        if vocab.size != data.get("size", vocab.size):
            raise ArgumentError(f"vocab size {data.get('size')} does not match its codebooks ({vocab.size})")
        return vocab

    @classmethod
    def load(cls, path: str | os.PathLike) -> LMVocab:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ArgumentError(f"{path}: not a readable vocab.json ({e})") from None
        if not isinstance(data, dict):
            raise ArgumentError(f"{path}: not a vocab.json (a JSON object expected)")
        return cls.from_dict(data)

    @classmethod
    def for_codes(cls, codes, extra: tuple[str, ...] = ()) -> LMVocab:
        """The vocabulary of a tokenizer's codes: its codebook size, and all its codebooks (or the codes' Q)."""
        info = codes.tokenizer
        size = info.get("codebook_size")
        if size is None:
            raise ArgumentError("these codes do not say their codebook size; build LMVocab(num_codebooks, size)")
        sizes = info.get("codebook_sizes") or ()
        return cls(codes.num_codebooks, int(size), extra, dict(info), tuple(sizes[:codes.num_codebooks]))
