"""Tokens a speech language model trains on: one vocabulary for every codebook (`LMVocab`, `vocab.json`) and the
patterns that turn an utterance's codes into token ids and back (`patterns.py` has the table)."""

from .patterns import PATTERNS, LMTokens, Pattern, get_pattern, seconds_of
from .vocab import LMVocab

__all__ = ["LMVocab", "LMTokens", "Pattern", "PATTERNS", "get_pattern", "seconds_of", "encode_codes",
           "decode_tokens"]


def encode_codes(codes, pattern: str | Pattern, vocab: LMVocab | None = None) -> list[LMTokens]:
    """Each item of a `Codes` batch (trimmed to its length) -> its LM tokens."""
    pattern = get_pattern(pattern) if isinstance(pattern, str) else pattern
    vocab = vocab or LMVocab.for_codes(codes)
    return [pattern.encode(codes.codes[i, :, : int(codes.lengths[i])].numpy(), vocab) for i in range(codes.batch_size)]


def decode_tokens(tokens: LMTokens, pattern: str | Pattern, vocab: LMVocab):
    """LM tokens -> codes [Q, T] as a LongTensor [1, Q, T], ready for `Codes` / `Tokenizer.decode`."""
    import torch

    pattern = get_pattern(pattern) if isinstance(pattern, str) else pattern
    return torch.from_numpy(pattern.decode(tokens, vocab))[None]
