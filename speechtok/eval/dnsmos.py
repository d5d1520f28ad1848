"""DNSMOS P.835 (Reddy et al. 2022): a no-reference estimate of a clip's speech quality (SIG), background
quality (BAK) and overall quality (OVRL), 1-5, from Microsoft's ONNX models as the `speechmos` package ships
them. It is not UTMOS and not a listening test: label it DNSMOS.

The resynthesis alone is scored (no reference): resampled to 16 kHz (soxr HQ), clipped to [-1, 1], scored over
9.01 s windows with a 1 s hop (a shorter clip is repeated to 9.01 s), the windows' scores averaged, then
mapped through DNSMOS's published polynomial fit (non-personalised).

Needs `pip install 'speechtok[judges]'`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .versions import file_sha256, package_version

__all__ = ["dnsmos", "dnsmos_score", "dnsmos_protocol", "DNSMOS_COLUMNS"]

RATE = 16000
DNSMOS_COLUMNS = {"dnsmos_ovrl": "ovrl_mos", "dnsmos_sig": "sig_mos", "dnsmos_bak": "bak_mos"}


def _model_paths() -> tuple[Path, Path]:
    try:
        import speechmos
    except ImportError as e:
        raise ImportError(f"DNSMOS needs speechmos: pip install 'speechtok[judges]' ({e})") from e
    root = Path(next(iter(speechmos.__path__))) / "dnsmos_models"
    return root / "sig_bak_ovr.onnx", root / "model_v8.onnx"


@functools.cache
def _model():
    import onnxruntime as ort
    import torch
    from speechmos.dnsmos import DNSMOS

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # one per metric worker, not all cores each
    options.inter_op_num_threads = 1
    primary, p808 = _model_paths()
    model = DNSMOS.__new__(DNSMOS)  # its __init__ opens the sessions with default (all-core) threading
    model.primary_model_path = str(primary)
    model.onnx_sess = ort.InferenceSession(str(primary), options, providers=["CPUExecutionProvider"])
    model.p808_onnx_sess = ort.InferenceSession(str(p808), options, providers=["CPUExecutionProvider"])
    return model


def dnsmos(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """wav [T] float -> {dnsmos_ovrl, dnsmos_sig, dnsmos_bak}."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sample_rate != RATE:
        import soxr

        wav = soxr.resample(wav, sample_rate, RATE, quality="HQ").astype(np.float32)
    if wav.size == 0 or not np.any(wav):
        raise ValueError("DNSMOS of an empty or all-zero signal is undefined")
    scores = _model()(np.clip(wav, -1.0, 1.0), RATE, False)
    return {column: float(scores[key]) for column, key in DNSMOS_COLUMNS.items()}


def dnsmos_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, cache: dict) -> dict[str, float]:
    return dnsmos(degraded, sample_rate)


def dnsmos_protocol() -> dict:
    try:
        primary, p808 = _model_paths()
        hashes = {p.name: file_sha256(p) for p in (primary, p808)}
    except ImportError:
        hashes = None
    return {"metric": "DNSMOS P.835 (SIG, BAK, OVRL; non-personalised), not UTMOS", "reference": "none "
            "(the resynthesis alone)", "package": f"speechmos {package_version('speechmos')}",
            "onnxruntime": package_version("onnxruntime"), "model_sha256": hashes,
            "windows": "9.01 s, hop 1 s, averaged; shorter clips repeated", "input": "16 kHz (soxr HQ), clipped to "
            "[-1, 1]"}
