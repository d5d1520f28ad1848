"""Speech recognition for the WER judges: Whisper (base by default) through faster-whisper / CTranslate2, on
the CPU in float32 (or CUDA in float16 where asked), decoded greedily, in English, without timestamps, without
conditioning on earlier text, without VAD and never skipping a window as "no speech", so that one input always
gets one transcript.

Needs `pip install 'speechtok[asr]'` and the model's wheels (`speechtok.codecs.whisper_files`).
"""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np

from .versions import package_version

__all__ = ["transcribe", "asr_protocol", "WHISPER_MODEL_ENV", "DECODING"]

WHISPER_MODEL_ENV = "SPEECHTOK_ASR_MODEL"  # which Whisper judges: "base" (the default) or "tiny.en" (quick checks)
ASR_RATE = 16000
DECODING = {"language": "en", "task": "transcribe", "beam_size": 1, "best_of": 1, "temperature": 0.0,
            "condition_on_previous_text": False, "without_timestamps": True, "vad_filter": False,
            "no_speech_threshold": None, "log_prob_threshold": None, "compression_ratio_threshold": None}


def model_name() -> str:
    return os.environ.get(WHISPER_MODEL_ENV, "base")


@functools.cache
def _model(name: str, device: str):
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:
        raise ImportError(f"the ASR judge needs faster-whisper: pip install 'speechtok[asr]' ({e})") from e
    import torch

    from ..codecs.whisper_files import model_dir

    compute = "float16" if device.startswith("cuda") else "float32"
    return WhisperModel(str(model_dir(name)), device=device, compute_type=compute,
                        cpu_threads=torch.get_num_threads(), num_workers=1)


def transcribe(wav: np.ndarray, sample_rate: int, name: str | None = None, device: str = "cpu") -> str:
    """wav [T] float -> its transcript (raw text, not normalised). Longer than 30 s is decoded window by window
    (faster-whisper's sequential decoding)."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sample_rate != ASR_RATE:
        import soxr

        wav = soxr.resample(wav, sample_rate, ASR_RATE, quality="HQ").astype(np.float32)
    segments, _ = _model(name or model_name(), device).transcribe(wav, **DECODING)
    return "".join(s.text for s in segments).strip()


def cached_transcript(cache: dict, wav: np.ndarray, sample_rate: int) -> str:
    """`transcribe`, remembered in a metric's per-reference `cache` by the audio's digest: WER, CER and dWER of
    one resynthesis share one decoding, and a resynthesis identical to the reference (identity) is the
    reference's own transcript."""
    key = hashlib.sha1(np.ascontiguousarray(wav, dtype=np.float32).tobytes()).hexdigest() + f"@{sample_rate}"
    store = cache.setdefault("asr", {})
    if key not in store:
        store[key] = transcribe(wav, sample_rate)
    return store[key]


def asr_protocol() -> dict:
    from ..codecs.whisper_files import WHISPER_FILES

    name = model_name()
    files = WHISPER_FILES.get(name)
    return {"asr": f"Whisper {name} (OpenAI, MIT), CTranslate2 format", "model_files": files.pip if files else None,
            "model_bin_sha256": files.sha256 if files else None, "decoding": DECODING, "compute_type":
            "float32 on CPU, float16 on CUDA", "input": "resampled to 16 kHz (soxr HQ)",
            "packages": {d: package_version(d, missing=None) for d in ("faster-whisper", "ctranslate2", "tokenizers")},
            "normaliser": "speechtok.eval.text.normalize_english (NFKC, lower case, apostrophes dropped, other "
                          "punctuation to spaces, digits read as English words)"}
