"""The results file of `speechtok eval` (JSON): its schema, and reading, checking and writing it.

    {
      "schema": "speechtok-eval-results", "schema_version": 1, "created": ISO time, "speechtok_version": str,
      "command": str | null,
      "data": {"name": "LS-test" | manifest | directory, "listed": int, "scored": int,
               "skipped": [{"id", "path", "reason"}], "seconds": float, "ids_sha1": str, "alignments": str | null},
      "metrics": [names asked for],
      "columns": {column: {"higher_is_better": bool}},
      "protocol": {resampler, reference, n_q, chunking, interval, bitrate, packages, device, workers, ...,
                   "metrics": {name: that metric's protocol}},
      "samples": null | {"dir": path relative to this file, "original": {utterance id: path under dir}},
      "rows": [{                                    # one per model and n_q
          "model": as named, "n_q": int | null, "status": "ok" | "failed", "error": str | null,
          "label": str | null,                      # the user's label (`speechtok eval --label MODEL=TEXT`)
          "tokenizer": {name, family, source, sample_rate, frame_rate, num_codebooks, codebook_size, device,
                        dtype, chunk_seconds, checkpoint: null | {path, sha256}, ...},
          "bitrate": null | {"nominal_bps", "effective_bps",
                             "codebooks": {"entropy_bits": [Q], "perplexity": [Q], "usage": [Q], "frames"}
                             (empty for a classical reference, whose "measured" bits are its files')},
          "speed": null | {encode_xrt, decode_xrt, encode_forward_xrt, decode_forward_xrt, audio_seconds, ...},
          "abx": null | {"within": {...}, "across": {...}, "features": str} | {"error": str},
          "aggregate": {column: null | {"mean", "ci95": [lo, hi] | null, "std", "n"}},
          "metric_failures": {metric: utterances it failed on},
          "failures": [{"id", "reason"}],           # utterances this model could not resynthesize
          "samples": {utterance id: path under samples.dir},
          "utterances": [{"id", "speaker", "duration_s", column: value | null, ..., "errors": {metric: why}}]
      }],
      "wall_seconds": float
    }

NaN and infinities are written as null (strict JSON).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..fileio import atomic_path

__all__ = ["RESULTS_SCHEMA", "RESULTS_VERSION", "check_results", "load_results", "write_results"]

RESULTS_SCHEMA = "speechtok-eval-results"
RESULTS_VERSION = 1

_TOP = {"schema": str, "schema_version": int, "created": str, "data": dict, "metrics": list, "columns": dict,
        "protocol": dict, "rows": list}
_DATA = {"name": str, "listed": int, "scored": int, "skipped": list}
_ROW = {"model": str, "status": str, "tokenizer": dict, "aggregate": dict, "metric_failures": dict,
        "failures": list, "samples": dict, "utterances": list}


def check_results(obj: object, source: object = "results") -> dict:
    """Raise ValueError naming the first key that does not fit the schema; return `obj`."""
    _fields(obj, _TOP, source)
    if obj["schema"] != RESULTS_SCHEMA:
        raise ValueError(f"{source}: not a speechtok eval results file (schema {obj['schema']!r})")
    if obj["schema_version"] > RESULTS_VERSION:
        raise ValueError(f"{source}: schema_version {obj['schema_version']} is newer than this speechtok reads "
                         f"({RESULTS_VERSION}); upgrade speechtok")
    _fields(obj["data"], _DATA, f"{source}: data")
    for i, skipped in enumerate(obj["data"]["skipped"]):
        _fields(skipped, {"id": str, "reason": str}, f"{source}: data.skipped[{i}]")
    for i, row in enumerate(obj["rows"]):
        where = f"{source}: rows[{i}]"
        _fields(row, _ROW, where)
        if row["status"] not in ("ok", "failed", "skipped"):  # skipped: an n_q the model does not have
            raise ValueError(f"{where}.status: {row['status']!r} is not 'ok', 'failed' or 'skipped'")
        if row["status"] == "failed" and not isinstance(row.get("error"), str):
            raise ValueError(f"{where}.error: a failed row says why")
        if row.get("n_q") is not None and not isinstance(row["n_q"], int):
            raise ValueError(f"{where}.n_q: expected an int or null")
        for column, summary in row["aggregate"].items():
            if summary is None:
                continue
            _fields(summary, {"mean": (int, float), "n": int}, f"{where}.aggregate.{column}")
            ci = summary.get("ci95")
            if ci is not None and (not isinstance(ci, list) or len(ci) != 2 or not ci[0] <= summary["mean"] <= ci[1]):
                raise ValueError(f"{where}.aggregate.{column}.ci95: expected [lo, hi] around the mean, got {ci}")
        for j, utt in enumerate(row["utterances"]):
            _fields(utt, {"id": str, "errors": dict}, f"{where}.utterances[{j}]")
        if row.get("bitrate") is not None:
            _fields(row["bitrate"], {"nominal_bps": (int, float), "effective_bps": (int, float), "codebooks": dict},
                    f"{where}.bitrate")
    return obj


def load_results(path: str | os.PathLike) -> dict:
    """Read and check a results file. Raises ValueError (or OSError) naming the file and the problem."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    return check_results(obj, path)


def write_results(results: dict, path: str | os.PathLike) -> Path:
    """Write `results` as strict JSON (NaN -> null), atomically; the samples directory is stored relative to
    the file's directory so that the two can move together."""
    path = Path(path)
    results = dict(results)
    if results.get("samples") and results["samples"].get("dir"):
        sample_dir = Path(results["samples"]["dir"]).resolve()
        results["samples"] = {**results["samples"],
                              "dir": Path(os.path.relpath(sample_dir, path.resolve().parent)).as_posix()}
    text = json.dumps(_finite(results), indent=1, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _fields(obj: object, spec: dict, where: object) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    for key, kind in spec.items():
        if key not in obj:
            raise ValueError(f"{where}: missing key {key!r}")
        if not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            expected = getattr(kind, "__name__", kind)
            raise ValueError(f"{where}.{key}: expected {expected}, got {type(obj[key]).__name__}")
