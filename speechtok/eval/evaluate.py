"""Score several models on the same utterances with the same metrics -> one results dict (see `results.py` for
its schema), as `speechtok eval` does.

For each model (a tokenizer or a pseudo-model such as `identity`, see `candidates.py`) and each `n_q`: every
utterance is resynthesized in this process, and its per-utterance metrics (PESQ, STOI, ... and plugins,
`metrics.py`) are computed in `workers` processes (PESQ, STOI and pyin are CPU-bound and single-threaded);
then the mean and 95% interval of each column, the nominal and effective bitrate and the codebook usage (from
the code histograms over all utterances), the speed on one clip (measured while no metric job is running), and
ABX on the phone alignments when asked for.

Bad input does not stop the evaluation: an utterance whose file is missing or unreadable is logged, skipped
for every model and listed in `data.skipped`; one that a model cannot resynthesize is listed in that row's
`failures`; a metric that fails on one utterance leaves its value out and says why; a model that cannot be
loaded gets a row with `status: "failed"` and the reason, and the other models are still scored.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import multiprocessing
import platform
import re
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__, audio
from ..errors import one_line
from .bitrate import code_counts, codebook_stats, effective_bitrate, nominal_bitrate
from .candidates import Candidate, load_candidate
from .metrics import CORPUS_METRICS, get_metric, resolve_metrics, score_utterance
from .results import RESULTS_SCHEMA, RESULTS_VERSION
from .sets import Utterance
from .stats import mean_ci
from .versions import JUDGE_PACKAGES, package_version

PROTOCOL_PACKAGES = ("speechtok", "torch", "numpy", "scipy", "soxr", "soundfile", "pesq", "pystoi", "librosa",
                     *JUDGE_PACKAGES)

__all__ = ["EvalConfig", "Reference", "evaluate", "load_references"]

log = logging.getLogger("speechtok.eval")


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] | None = None  # None: DEFAULT_METRICS + installed plugins (metrics.py)
    n_qs: tuple[int, ...] = ()  # rows per tokenizer; empty: all its codebooks
    workers: int = 0  # metric processes (spawned: a script that passes > 0 needs `if __name__ == "__main__":`);
    #                   0 computes them in this process
    device: str | None = None  # torch device of the models (default cpu)
    samples: int = 0  # write the audio of the first N utterances (original and every row's resynthesis)
    samples_dir: str | None = None  # where (required when samples > 0)
    speed_seconds: float = 10.0  # the speed clip: the first usable utterance, cut to this length
    speed_repeats: int = 3
    abx_max_triplets: int | None = 20000  # per ABX mode; None: all
    abx_context: str = "within"  # "within" (same neighbours, ZeroSpeech) or "any"
    seed: int = 0  # of the ABX triplet draw
    progress: bool = True  # a progress bar on stderr
    labels: dict | None = None  # model as named -> the user's label for its rows (e.g. "random weights")


@dataclass(frozen=True)
class Reference:
    utt: Utterance
    wav: np.ndarray  # float32 [T], mono (channels averaged), at its native rate
    sample_rate: int


def load_references(utts: Sequence[Utterance]) -> tuple[list[Reference], list[dict]]:
    """Read every utterance -> (references, skipped [{id, path, reason}]); bad files are logged, not raised."""
    refs, skipped = [], []
    for utt in utts:
        try:
            wav, sr = audio.read(utt.path)  # [C, T]; raises AudioError naming the file and the problem
            refs.append(Reference(utt, np.ascontiguousarray(wav.mean(axis=0), dtype=np.float32), sr))
        except Exception as e:  # missing, unreadable, empty, NaN: skip it, count it
            reason = one_line(e)
            log.warning("skipping %s: %s", utt.id, reason)
            skipped.append({"id": utt.id, "path": str(utt.path), "reason": reason})
    return refs, skipped


def evaluate(models: Sequence[str], utts: Sequence[Utterance], cfg: EvalConfig = EvalConfig(),
             data_name: str = "custom", alignments: str | Path | None = None, command: str | None = None) -> dict:
    """Every model of `models` (names, directories, `identity`) on `utts` -> the results dict."""
    metrics = resolve_metrics(cfg.metrics)
    if cfg.samples and not cfg.samples_dir:
        raise ValueError("samples > 0 needs samples_dir")
    started = time.time()
    refs, skipped = load_references(utts)
    if not refs:
        log.error("no usable utterance among %d", len(utts))
    items, abx_note = _abx_items(metrics, refs, alignments)
    sample_refs = refs[: cfg.samples]
    originals = _write_originals(sample_refs, cfg.samples_dir) if sample_refs else {}
    rows: list[dict] = []
    from ..runtime.progress import progress

    pool = _executor(cfg.workers)
    threads = torch.get_num_threads()
    if cfg.workers > 0:  # the workers take the cores; this process's model runs beside them on one thread
        torch.set_num_threads(1)
    try:
        with progress(total=0, desc="eval", unit="utt", disable=not cfg.progress) as bar:  # lines off a terminal
            pending: list[tuple[dict, Reference, Future]] = []  # (n_q -> row, reference, its scores)
            for index, spec in enumerate(models):
                rows += _evaluate_model(index, spec, refs, metrics, cfg, pool, bar, pending, items, sample_refs)
            for live, ref, fut in pending:
                _record(live, ref, fut)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        torch.set_num_threads(threads)
    pool.shutdown(wait=True)
    columns: dict[str, dict] = {}
    for row in rows:
        _finish(row, columns, metrics)
        row["label"] = (cfg.labels or {}).get(row["model"])
    return {
        "schema": RESULTS_SCHEMA, "schema_version": RESULTS_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "speechtok_version": __version__, "command": command,
        "data": {"name": data_name, "listed": len(utts), "scored": len(refs), "skipped": skipped,
                 "speakers": len({r.utt.speaker for r in refs if r.utt.speaker}),
                 "seconds": round(sum(r.wav.shape[-1] / r.sample_rate for r in refs), 3),
                 "ids_sha1": hashlib.sha1("\n".join(r.utt.id for r in refs).encode()).hexdigest(),
                 "alignments": None if alignments is None else str(alignments)},
        "metrics": list(metrics),
        "columns": columns,
        "protocol": _protocol(metrics, cfg, refs, abx_note),
        "samples": {"dir": cfg.samples_dir, "original": originals} if originals else None,
        "rows": rows,
        "wall_seconds": round(time.time() - started, 1),
    }


# -- one model ---------------------------------------------------------------------------------------------------


def _evaluate_model(index: int, spec: str, refs: list[Reference], metrics: tuple[str, ...], cfg: EvalConfig,
                    pool, bar, pending: list, items, sample_refs: list[Reference]) -> list[dict]:
    try:
        cand = load_candidate(spec, cfg.device)
        info = cand.describe()
    except Exception as e:  # a model that cannot be loaded: its row says why; the others go on
        log.error("%s: cannot load: %s", spec, one_line(e))
        return [_new_row(spec, None, {}, status="failed", error=f"cannot load: {one_line(e)}")]
    rows: dict[int | None, dict] = {}
    try:
        n_qs = cand.n_qs(cfg.n_qs)
    except ValueError:  # an n_q this model does not have (`--n-q 1 8` over a one-codebook model): no row
        q = getattr(cand.tok, "num_codebooks", 0)
        n_qs = [n for n in dict.fromkeys(cfg.n_qs) if 1 <= n <= q]
        for n in dict.fromkeys(cfg.n_qs):
            if n not in n_qs:
                why = f"it has {q} codebook{'s' if q != 1 else ''}"
                rows[n] = _new_row(spec, n, info, status="skipped", error=why)
                log.warning("%s: n_q %d skipped (%s)", spec, n, why)
    live = {n: _new_row(spec, n, info) for n in n_qs}
    rows.update(live)
    if not live:
        return list(rows.values())
    if "speed" in metrics and cand.tok is not None and refs:
        wait([f for _, _, f in pending])  # no metric job competes with the timing
        _measure_speed(cand, refs[0], live, cfg)
    bar.total += len(refs)
    bar.refresh()
    counts = None
    codes_by_utt: dict[str, object] = {}
    slug = f"{index:02d}-{_slug(spec)}"
    for ref in refs:
        try:
            res = cand.resynthesize(ref.wav, ref.sample_rate, list(live))
        except Exception as e:  # too short for this model, a model bug: this utterance fails for this model
            reason = one_line(e)
            log.warning("%s: %s: %s", spec, ref.utt.id, reason)
            for row in live.values():
                row["failures"].append({"id": ref.utt.id, "reason": reason})
            bar.update(1)
            continue
        if res.codes is not None:
            c = code_counts(res.codes, cand.tok.codebook_size)
            counts = c if counts is None else counts + c
            if items:
                codes_by_utt[ref.utt.id] = res.codes
        if not res.outputs:  # an encode-only tokenizer: its codes count (bitrate, ABX), there is no audio to score
            for row in live.values():
                row["utterances"].append({**_utterance(ref), "errors": {}})
            bar.update(1)
            continue
        _throttle(pending, cfg.workers)
        fut = pool.submit(score_utterance, ref.wav, res.outputs, ref.sample_rate, metrics,  # all n_q in one job
                          ref.utt.text)
        fut.add_done_callback(lambda _: bar.update(1))
        pending.append((live, ref, fut))
        if any(ref is s for s in sample_refs):
            for n_q, degraded in res.outputs.items():
                live[n_q]["samples"][ref.utt.id] = _write_sample(cfg.samples_dir, slug, n_q, ref, degraded)
    measured = cand.measured_bps()
    for n_q, row in live.items():
        if measured is not None:
            # a classical codec's bits are its file's: nominal = effective = measured, no codebooks
            row["bitrate"] = {"nominal_bps": measured, "effective_bps": measured, "codebooks": {}, "measured": True}
        if counts is not None:
            row["bitrate"] = _bitrate(cand.tok.codebook_rates[:n_q], cand.tok.codebook_sizes[:n_q], counts[:n_q])
        if items and cand.tok is not None and codes_by_utt:
            row["abx"] = _abx(cand, codes_by_utt, items, n_q, cfg)
    return [rows[n] for n in sorted(rows, key=lambda n: -1 if n is None else n)]


def _throttle(pending: list, workers: int) -> None:
    """Wait while more than a few jobs per worker are queued: each holds its audio until a worker takes it."""
    limit = 2 * max(1, workers) + 2
    while True:
        running = [f for _, _, f in pending if not f.done()]
        if len(running) < limit:
            return
        wait(running, return_when=FIRST_COMPLETED)


def _new_row(spec: str, n_q: int | None, info: dict, status: str = "ok", error: str | None = None) -> dict:
    return {"model": spec, "n_q": n_q, "status": status, "error": error, "tokenizer": info,
            "bitrate": None, "speed": None, "abx": None, "aggregate": {}, "metric_failures": {},
            "failures": [], "samples": {}, "utterances": []}


def _utterance(ref: Reference) -> dict:
    return {"id": ref.utt.id, "speaker": ref.utt.speaker, "duration_s": round(ref.wav.shape[-1] / ref.sample_rate, 3)}


def _record(live: dict, ref: Reference, fut: Future) -> None:
    base = _utterance(ref)
    try:
        by_n_q = fut.result()
    except Exception as e:  # a worker that died (out of memory, a crash in a native library)
        for row in live.values():
            row["failures"].append({"id": ref.utt.id, "reason": f"metric worker failed: {one_line(e)}"})
        return
    for n_q, scores in by_n_q.items():
        live[n_q]["utterances"].append({**base, **scores.values, "errors": scores.errors})
        live[n_q].setdefault("_higher", {}).update(scores.higher_is_better)


def _finish(row: dict, columns: dict, metrics: tuple[str, ...]) -> None:
    higher = row.pop("_higher", {})
    if row["status"] != "ok":  # never loaded (failed), or an n_q it does not have (skipped): nothing to summarise
        return
    for column, hib in higher.items():
        columns.setdefault(column, {"higher_is_better": hib})
    known = [c for m in metrics if m not in CORPUS_METRICS for c in _known_columns(m)]
    for column in dict.fromkeys([*known, *higher]):
        summary = mean_ci([u[column] for u in row["utterances"] if u.get(column) is not None])
        row["aggregate"][column] = None if summary is None else summary.to_json()
    for u in row["utterances"]:
        for metric in u["errors"]:
            row["metric_failures"][metric] = row["metric_failures"].get(metric, 0) + 1
    if row["speed"]:
        for key in ("encode_xrt", "decode_xrt"):
            row["aggregate"][key] = {"mean": row["speed"][key], "ci95": None, "std": None, "n": 1}
            columns.setdefault(key, {"higher_is_better": True})
    if row["abx"]:
        for mode in ("within", "across"):
            score = row["abx"].get(mode)
            ok = isinstance(score, dict) and score.get("error") is not None
            row["aggregate"][f"abx_{mode}"] = ({"mean": score["error"], "ci95": None, "std": None,
                                                "n": score["triplets"]} if ok else None)
            columns.setdefault(f"abx_{mode}", {"higher_is_better": False})
    if row["status"] == "ok" and not row["utterances"]:
        row["status"] = "failed"
        first = row["failures"][0]["reason"] if row["failures"] else "no utterance to score"
        row["error"] = f"no utterance could be scored ({first})"


def _known_columns(metric: str) -> list[str]:
    try:
        return list(get_metric(metric).columns)
    except Exception:
        return []


def _measure_speed(cand: Candidate, ref: Reference, rows: dict, cfg: EvalConfig) -> None:
    """Encode once with the largest n_q (the encoder dominates; the codebook search grows a little with n_q),
    decode at each n_q."""
    from .speed import measure_speed

    clip = ref.wav[: int(cfg.speed_seconds * ref.sample_rate)]
    top = max(rows)
    try:
        full = measure_speed(cand.tok, clip, ref.sample_rate, top, cfg.speed_repeats)
        for n_q, row in rows.items():
            speed = full if n_q == top else dataclasses.replace(
                measure_speed(cand.tok, clip, ref.sample_rate, n_q, cfg.speed_repeats, parts=("decode",)),
                encode_xrt=full.encode_xrt, encode_forward_xrt=full.encode_forward_xrt)
            row["speed"] = dataclasses.asdict(speed) | {"encode_n_q": top}
    except Exception as e:
        log.warning("%s: speed not measured: %s", cand.spec, one_line(e))


def _bitrate(rates: list[float], sizes: list[int], counts: np.ndarray) -> dict:
    stats = codebook_stats(counts, sizes)
    return {"nominal_bps": nominal_bitrate(rates, sizes),
            "effective_bps": effective_bitrate(rates, stats.entropy_bits),
            "codebooks": dataclasses.asdict(stats)}


# -- ABX ---------------------------------------------------------------------------------------------------------


def _abx_items(metrics: tuple[str, ...], refs: list[Reference], alignments) -> tuple[list | None, str | None]:
    if "abx" not in metrics:
        return None, None
    if alignments is None:
        log.warning("abx: no phone alignments for this data (--alignments FILE); ABX left out")
        return None, "no phone alignments"
    from .abx import items_from_alignments

    items = items_from_alignments(alignments, {r.utt.id: r.utt.speaker for r in refs})
    if not items:
        log.warning("abx: %s has no phone of these utterances; ABX left out", alignments)
        return None, "no aligned phone in these utterances"
    return items, None


def _abx(cand: Candidate, codes_by_utt: dict, items: list, n_q: int, cfg: EvalConfig) -> dict:
    from .abx import ABX_MODES, abx
    from .features import codes_to_features

    try:
        feats = {uid: codes_to_features(cand.tok, codes, layers=n_q) for uid, codes in codes_by_utt.items()}
        return {mode: abx(feats, items, mode, cfg.abx_max_triplets, cfg.seed, cfg.abx_context).to_json()
                for mode in ABX_MODES} | {"features": f"codes, first {n_q} codebooks (quantizer.decode)"}
    except Exception as e:
        log.warning("%s: ABX failed: %s", cand.spec, one_line(e))
        return {"error": one_line(e)}


# -- samples -----------------------------------------------------------------------------------------------------


def _write_originals(refs: list[Reference], samples_dir: str) -> dict[str, str]:
    out = {}
    for ref in refs:
        rel = Path("original") / f"{_safe_id(ref.utt.id)}.wav"
        audio.write(Path(samples_dir) / rel, ref.wav, ref.sample_rate)
        out[ref.utt.id] = rel.as_posix()
    return out


def _write_sample(samples_dir: str, slug: str, n_q: int | None, ref: Reference, wav: np.ndarray) -> str:
    rel = Path(slug if n_q is None else f"{slug}-q{n_q}") / f"{_safe_id(ref.utt.id)}.wav"
    audio.write(Path(samples_dir) / rel, wav, ref.sample_rate)
    return rel.as_posix()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")[-48:] or "model"


def _safe_id(uid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", uid)


# -- protocol ----------------------------------------------------------------------------------------------------


def _protocol(metrics: tuple[str, ...], cfg: EvalConfig, refs: list[Reference], abx_note: str | None) -> dict:
    import soxr
    import torch

    per_metric = {}
    for name in metrics:
        if name in CORPUS_METRICS:
            continue
        try:
            per_metric[name] = get_metric(name).protocol()
        except Exception as e:
            per_metric[name] = {"error": one_line(e)}
    if "speed" in metrics:
        per_metric["speed"] = {"clip": f"the first usable utterance, up to {cfg.speed_seconds:g} s",
                               "repeats": cfg.speed_repeats, "statistic": "median after one warm-up run",
                               "api": "Tokenizer.encode / decode", "forward": "encoder + quantizer.encode; "
                               "quantizer.decode + decoder", "batch": 1, "torch_threads": torch.get_num_threads()}
    if "abx" in metrics:
        from .abx import abx_protocol

        per_metric["abx"] = abx_protocol(cfg.abx_max_triplets, cfg.seed, cfg.abx_context)
        if abx_note:
            per_metric["abx"]["not_computed"] = abx_note
    return {
        "reference": "each file as stored, mono (channels averaged), at its native rate; never loudness-normalised",
        "resynthesis": "resampled from the model's rate to the reference's with the same resampler",
        "resampler": f"soxr {soxr.__version__} HQ",
        "n_q": "encoded once with the largest n_q; each row decodes the first n_q codebooks",
        "chunking": "Tokenizer.chunk_seconds windows (see each row's tokenizer.chunk_seconds) with "
                    "receptive-field overlap",
        "interval": "95% Student-t interval of the mean over utterances",
        "bitrate": "nominal: frame rate x sum log2(codebook size); effective: frame rate x sum of the per-codebook "
                   "entropies of the code histogram over all scored utterances",
        "metrics": per_metric,
        "packages": {d: package_version(d, missing=None) for d in PROTOCOL_PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": cfg.device or "cpu",
        "workers": cfg.workers,
        "torch_threads": torch.get_num_threads(),
        "sample_rates": sorted({r.sample_rate for r in refs}),
    }


# -- execution ---------------------------------------------------------------------------------------------------


class _Inline:
    """An executor that runs each job at submit, in this process (workers=0)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: B036 - handed to the caller through the future
            fut.set_exception(e)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already


def _executor(workers: int):
    if workers <= 0:
        return _Inline()
    # spawn, not fork: this process holds torch's thread pools, which a forked child must not touch
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)
