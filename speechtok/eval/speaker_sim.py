"""SIM-GE2E: cosine similarity of the speaker embeddings of the original and the resynthesis, from Resemblyzer's
GE2E speaker encoder (Wan et al. 2018; 256-d, LSTM on 40 mels). Papers' "SIM" uses a WavLM-TDNN verifier: the
figures are not comparable across the two, hence the label.

Each signal: resampled to 16 kHz (soxr HQ), then Resemblyzer's own preprocessing (volume normalised to -30 dBFS,
long silences trimmed by WebRTC VAD), embedded over 1.6 s partials, averaged, L2-normalised.

Needs `pip install 'speechtok[judges]'` and `pip install --no-deps Resemblyzer==0.1.4`.
"""

from __future__ import annotations

import functools

import numpy as np

from .versions import file_sha256, package_version

__all__ = ["ge2e_embedding", "speaker_similarity", "sim_score", "sim_protocol"]

RATE = 16000


@functools.cache
def _encoder():
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as e:
        raise ImportError("SIM-GE2E needs Resemblyzer: pip install 'speechtok[judges]' && pip install --no-deps "
                          f"Resemblyzer==0.1.4 ({e})") from e
    return VoiceEncoder(device="cpu", verbose=False)


def ge2e_embedding(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """wav [T] float -> unit-norm GE2E embedding [256]."""
    import soxr
    from resemblyzer import preprocess_wav

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sample_rate != RATE:
        wav = soxr.resample(wav, sample_rate, RATE, quality="HQ").astype(np.float32)
    trimmed = preprocess_wav(wav)
    if trimmed.size < RATE // 10:  # the VAD kept (almost) nothing: embed what there is
        trimmed = wav
    return _encoder().embed_utterance(trimmed)


def speaker_similarity(reference: np.ndarray, degraded: np.ndarray, sample_rate: int,
                       reference_embedding: np.ndarray | None = None) -> float:
    a = reference_embedding if reference_embedding is not None else ge2e_embedding(reference, sample_rate)
    b = ge2e_embedding(degraded, sample_rate)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def sim_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, cache: dict) -> dict[str, float]:
    if "ge2e" not in cache:  # the reference's embedding, once for all its resyntheses
        cache["ge2e"] = ge2e_embedding(reference, sample_rate)
    return {"sim": speaker_similarity(reference, degraded, sample_rate, cache["ge2e"])}


def sim_protocol() -> dict:
    return {"metric": "SIM-GE2E: cosine of Resemblyzer GE2E speaker embeddings (not WavLM-TDNN SIM)",
            "package": f"Resemblyzer {package_version('Resemblyzer')}", "weights": "resemblyzer/pretrained.pt "
            "(shipped in the package)", "sha256": _weights_sha256(), "input": "16 kHz (soxr HQ), Resemblyzer "
            "preprocess_wav (-30 dBFS, VAD-trimmed silences)", "range": "[-1, 1], 1 = same embedding"}


def _weights_sha256() -> str | None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pretrained.pt"
    return file_sha256(path) if path.is_file() else None
