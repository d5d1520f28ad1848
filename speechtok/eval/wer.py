"""Intelligibility judges: the Whisper transcript of a resynthesis (`asr.py`) scored against text.

- `wer` / `cer`: against the utterance's reference transcript, where its set has one (SO prompts, FSDD digits,
  a manifest's `text` column; never LS, whose text is a machine hypothesis: `sets.py` drops it). Without one the
  metric fails for that utterance, saying so.
- `dwer`: against the Whisper transcript of the original audio, for every set ("differential" WER: what the
  codec loses, whatever the ASR's own errors; 0 for `identity` by construction).

All per utterance (errors / reference words, so one utterance can exceed 1); the table's figure is their mean.
Both texts go through `text.normalize_english`.
"""

from __future__ import annotations

import numpy as np

from .asr import asr_protocol, cached_transcript
from .text import char_error_rate, word_error_rate

__all__ = ["wer_score", "cer_score", "dwer_score", "wer_protocol"]


def _reference_text(cache: dict) -> str:
    text = cache.get("text")
    if not text:
        raise ValueError("no reference transcript for this utterance (LS text is a machine hypothesis: use dwer)")
    return text


def wer_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, cache: dict) -> dict[str, float]:
    return {"wer": word_error_rate(_reference_text(cache), cached_transcript(cache, degraded, sample_rate))}


def cer_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, cache: dict) -> dict[str, float]:
    return {"cer": char_error_rate(_reference_text(cache), cached_transcript(cache, degraded, sample_rate))}


def dwer_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, cache: dict) -> dict[str, float]:
    original = cached_transcript(cache, reference, sample_rate)
    return {"dwer": word_error_rate(original, cached_transcript(cache, degraded, sample_rate))}


def wer_protocol(kind: str) -> dict:
    against = {"wer": "the set's reference transcript", "cer": "the set's reference transcript (characters)",
               "dwer": "the ASR transcript of the original audio"}[kind]
    return {"metric": kind.upper(), "against": against, "statistic": "mean over utterances of the per-utterance "
            "rate (edit distance / reference length)", **asr_protocol()}
