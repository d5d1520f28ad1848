"""English text normalisation for WER, and word / character error rates (Levenshtein distance over words or
characters divided by the reference's length). Pure functions, no dependency.

`normalize_english` (ours, simpler than Whisper's English normaliser): Unicode NFKC; lower case; apostrophes
dropped ("don't" -> "dont", "speaker's" -> "speakers"); every other character that is not a letter or a digit
becomes a space (so "well-known" -> "well known", "U.S.A." -> "u s a"); then numbers: a run of digits with a
leading zero, or of more than six digits, is read digit by digit ("0351" -> "zero three five one"), any other
run as an English cardinal ("25" -> "twenty five", "105" -> "one hundred five", no "and"); whitespace is
collapsed. Neither spellings ("colour"/"color") nor abbreviations ("mr"/"mister") are unified.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_english", "number_words", "edit_distance", "word_error_rate", "char_error_rate"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def normalize_english(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"['\u2019\u2018`]", "", text)
    text = re.sub(r"[^\w]|_", " ", text)
    text = re.sub(r"\d+", lambda m: f" {number_words(m.group())} ", text)
    return " ".join(text.split())


def number_words(digits: str) -> str:
    """A run of ASCII digits -> English words (see the module docstring)."""
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > 6:
        return " ".join(_ONES[int(d)] for d in digits)
    return _cardinal(int(digits))


def _cardinal(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _cardinal(n % 100))
    return _cardinal(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + _cardinal(n % 1000))


def edit_distance(reference: list | str, hypothesis: list | str) -> int:
    """Levenshtein distance (substitutions + deletions + insertions, each 1) between two sequences."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, start=1):
        current = [i]
        for j, h in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str, normalize: bool = True) -> float:
    """Word edit distance / words of the reference (can exceed 1). An empty reference: ValueError."""
    ref, hyp = (normalize_english(t) if normalize else t for t in (reference, hypothesis))
    words = ref.split()
    if not words:
        raise ValueError("the reference has no word: WER is undefined")
    return edit_distance(words, hyp.split()) / len(words)


def char_error_rate(reference: str, hypothesis: str, normalize: bool = True) -> float:
    """Character edit distance over the normalised texts (single spaces between words count) / reference
    characters."""
    ref, hyp = (normalize_english(t) if normalize else t for t in (reference, hypothesis))
    if not ref:
        raise ValueError("the reference has no character: CER is undefined")
    return edit_distance(ref, hyp) / len(ref)
