"""One id space for a speech LM: special tokens first, then each codebook's codes at its own offset.

    vocab = LMVocab(num_codebooks=8, codebook_size=1024, extra=("<sem>", "<ac>"))
    vocab.id(q, code)       # special_count + q * codebook_size + code
    vocab.code(token)       # -> (q, code), or None for a special token
    vocab.save("vocab.json"); LMVocab.load("vocab.json")   # round-trips

Codebooks get disjoint ranges so that one embedding table serves every codebook of a flattened stream and an id
says which codebook it belongs to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from ..fileio import write_text

VOCAB_FORMAT_VERSION = 1
BASE_SPECIALS = ("<pad>", "<bos>", "<eos>")


@dataclass(frozen=True)
class LMVocab:
    num_codebooks: int
    codebook_size: int
    extra: tuple[str, ...] = ()  # user-named special tokens, after pad, bos and eos
    tokenizer: dict = field(default_factory=dict, compare=False)  # the identity of the codes' tokenizer

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", tuple(self.extra))
        if self.num_codebooks < 1 or self.codebook_size < 1:
            raise ArgumentError(f"LMVocab needs num_codebooks and codebook_size >= 1, got {self.num_codebooks} and "
                                f"{self.codebook_size}")
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
        """The first code id: codebook q's codes are `offset + q * codebook_size + code`."""
        return len(self.specials)

    @property
    def size(self) -> int:
        return self.offset + self.num_codebooks * self.codebook_size

    def ids(self, codes: np.ndarray, first_codebook: int = 0) -> np.ndarray:
        """codes [q, T] (codebooks first_codebook.. of a tokenizer) -> ids [q, T] (int64)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or first_codebook + codes.shape[0] > self.num_codebooks:
            raise ArgumentError(f"codes of shape {list(codes.shape)} from codebook {first_codebook} do not fit a "
                                f"vocabulary of {self.num_codebooks} codebooks")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ArgumentError(f"codes out of range [0, {self.codebook_size}): {codes.min()}..{codes.max()}")
        q = np.arange(first_codebook, first_codebook + codes.shape[0])[:, None]
        return self.offset + q * self.codebook_size + codes

    def codes(self, ids: np.ndarray, first_codebook: int = 0) -> np.ndarray:
        """ids [q, T] -> codes [q, T]; an id of another codebook (or a special) is an error."""
        ids = np.asarray(ids, dtype=np.int64)
        q = np.arange(first_codebook, first_codebook + ids.shape[0])[:, None]
        codes = ids - self.offset - q * self.codebook_size
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ArgumentError("ids do not belong to the codebooks their positions say (a special token, or an id "
                                "of another codebook, where a code should be)")
        return codes

    def codebook_of(self, ids: np.ndarray) -> np.ndarray:
        """Each id's codebook (-1 for special tokens)."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(ids >= self.offset, (ids - self.offset) // self.codebook_size, -1)

    def to_dict(self) -> dict:
        return {"format_version": VOCAB_FORMAT_VERSION, "num_codebooks": self.num_codebooks,
                "codebook_size": self.codebook_size, "specials": list(self.specials), "offset": self.offset,
                "size": self.size, "tokenizer": self.tokenizer}

    def save(self, path: str | os.PathLike) -> Path:
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict) -> LMVocab:
        if data.get("format_version") != VOCAB_FORMAT_VERSION:
            raise ArgumentError(f"unsupported vocab format_version {data.get('format_version')!r}")
        specials = tuple(data["specials"])
        if specials[: len(BASE_SPECIALS)] != BASE_SPECIALS:
            raise ArgumentError(f"a vocabulary's specials start with {list(BASE_SPECIALS)}, got {list(specials)}")
        vocab = cls(int(data["num_codebooks"]), int(data["codebook_size"]), specials[len(BASE_SPECIALS):],
                    dict(data.get("tokenizer") or {}))
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
        return cls(codes.num_codebooks, int(size), extra, dict(info))
