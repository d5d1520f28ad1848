"""`speechtok eval MODEL... --data SET|MANIFEST|DIR -o results.json`: score models on the same utterances."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from ..errors import one_line

log = logging.getLogger("speechtok")

DESCRIPTION = """\
Score every MODEL on the same utterances with the same metrics and write per-utterance and aggregate figures
(mean and 95% interval) with the protocol to a results JSON, which `speechtok leaderboard` turns into a page.

MODEL: a bundled name, a checkpoint directory, a plugin (NAME or NAME:SPEC), or `identity` (decode = the
original: PESQ-wb about 4.64, STOI 1.0, the ceiling).
--data: LS-test or SO-test (the fixed evaluation sets; LS-dev, SO-dev for tuning), a manifest (.tsv with a
`path` column, or .jsonl) or a directory of audio.
--metrics: pesq_wb pesq_nb stoi estoi si_sdr mel f0 (per utterance), the judges wer cer dwer (Whisper base ASR:
against the set's reference text / the ASR of the original; `speechtok[asr]`), sim (SIM-GE2E) and dnsmos
(DNSMOS P.835; both `speechtok[judges]`), speed, abx (phone ABX on the codes; needs alignments, found for the
sets), and metrics installed under the `speechtok.metrics` entry-point group.
Default: pesq_wb stoi estoi si_sdr mel f0 speed, dwer and sim where installed, and every installed plugin.
Bitrate and codebook usage are always reported.
--f0-tracker: f0's pitch tracker, CREPE tiny by default (torchcrepe; pyin without it); `yin` is about 20 times
cheaper (the LS-test at 4 codebook counts with the signal metrics: 1 min 21 s on 2 cores, against 4 min 29 s with
CREPE) but its figures do not compare with CREPE's (the results' protocol names the tracker).

A missing or unreadable file is logged, skipped and counted; a model that fails gets a row that says why.
Exit status 1 when anything was skipped or failed (the results are still written), or when --data holds no
utterance at all (then nothing is written)."""


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score tokenizers on the same audio -> results JSON",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="tokenizer, checkpoint directory, plugin, or identity")
    p.add_argument("--data", required=True, help="LS-test, SO-test, a manifest or a directory")
    p.add_argument("--data-root", default=None,
                   help="the shared/data directory for set names (default: $SPEECHTOK_DATA, else ../shared/data)")
    p.add_argument("--split", default=None, help="keep only this split of a manifest")
    p.add_argument("--limit", type=int, default=None,
                   help="only N utterances, spread over the speakers (quick checks)")
    p.add_argument("--n-q", nargs="+", default=[], metavar="N", help="codebooks per row, e.g. 1 2 8 (default: all)")
    p.add_argument("--metrics", nargs="+", default=None, metavar="NAME", help="metrics to compute (see above)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes computing the metrics (0: in this process; default: min(4, cores))")
    p.add_argument("--device", default=None, help="torch device of the models (default: cpu)")
    p.add_argument("--samples", type=int, default=3,
                   help="write the audio of the first N utterances for listening, beside -o (default 3)")
    p.add_argument("--alignments", default=None, help="phone alignments (alignments.tsv) for --metrics abx")
    p.add_argument("--abx-context", choices=("within", "any"), default="within",
                   help="ABX triplets share the neighbouring phones (within, ZeroSpeech) or not (any)")
    p.add_argument("--max-triplets", type=int, default=20000, help="ABX triplets drawn per mode (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the ABX triplet draw")
    p.add_argument("--speed-seconds", type=float, default=10.0, help="length of the speed clip")
    p.add_argument("--f0-tracker", choices=("crepe", "yin", "pyin"), default=None,
                   help="pitch tracker of the f0 metric (default: crepe where installed, else pyin)")
    p.add_argument("--label", action="append", default=[], metavar="MODEL=TEXT",
                   help="a label the page shows beside MODEL's rows, e.g. 'dac:w.pth=random weights' (repeatable)")
    p.add_argument("-o", "--output", required=True, help="results JSON to write")
    p.set_defaults(func=cmd_eval)


def parse_labels(items: list[str], models: list[str] | None = None) -> dict[str, str]:
    """['MODEL=TEXT', ...] -> {MODEL: TEXT}, split at the last '=' (a plugin spec may hold '=', as mimi:DIR?q=8).
    Raises ValueError for an item without '=' or, given `models`, for a MODEL not among them."""
    labels = {}
    for item in items:
        model, sep, text = item.rpartition("=")
        if not sep or not model or not text:
            raise ValueError(f"--label {item!r}: expected MODEL=TEXT")
        if models is not None and model not in models:
            raise ValueError(f"--label {item!r}: {model!r} is not one of the models ({', '.join(models)})")
        labels[model] = text
    return labels


def spread_over_speakers(utts: list, limit: int) -> list:
    """`limit` utterances taken round-robin over the speakers (each speaker's in listed order), so that a quick
    check of 10 is not 10 of one speaker; utterances without a speaker count as one speaker each."""
    by_speaker: dict[object, list] = {}
    for i, u in enumerate(utts):
        by_speaker.setdefault(u.speaker or ("", i), []).append(u)
    queues, picked = list(by_speaker.values()), []
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    order = {id(u): i for i, u in enumerate(utts)}
    return sorted(picked, key=lambda u: order[id(u)])


def cmd_eval(args: argparse.Namespace) -> int:
    from ..eval.evaluate import EvalConfig, evaluate
    from ..eval.leaderboard import collect, markdown
    from ..eval.results import write_results
    from ..eval.sets import alignments_path, utterances

    try:
        n_qs = tuple(int(x) for item in args.n_q for x in item.split(",") if x)
        metrics = None if args.metrics is None else tuple(x for m in args.metrics for x in m.split(",") if x)
        labels = parse_labels(args.label, args.models)
        utts = utterances(args.data, args.data_root, args.split)
        if metrics is not None:
            from ..eval.metrics import resolve_metrics

            resolve_metrics(metrics)
    except (ValueError, FileNotFoundError, KeyError) as e:
        log.error("%s", one_line(e))
        return 1
    if args.limit is not None:
        utts = spread_over_speakers(utts, args.limit)
    if not utts:  # no results file: an empty one would read as a model that scored nothing
        why = f"--limit {args.limit} leaves none" if args.limit is not None and args.limit < 1 else "no audio files"
        log.error("%s: no utterances to score (%s); nothing written", args.data, why)
        return 1
    if args.f0_tracker is not None:
        from ..eval.prosody import TRACKER_ENV

        os.environ[TRACKER_ENV] = args.f0_tracker  # read by the metric in this process and in its workers
    out = Path(args.output)
    samples_dir = out.with_name(out.stem + ".samples") if args.samples > 0 else None
    alignments = args.alignments or alignments_path(args.data, args.data_root)
    cfg = EvalConfig(metrics=metrics, n_qs=n_qs, workers=args.workers, device=args.device, samples=args.samples,
                     samples_dir=None if samples_dir is None else str(samples_dir), speed_seconds=args.speed_seconds,
                     abx_max_triplets=args.max_triplets or None, abx_context=args.abx_context, seed=args.seed,
                     progress=not args.quiet, labels=labels)
    if samples_dir is not None and samples_dir.is_dir():
        import shutil

        shutil.rmtree(samples_dir)  # samples of an earlier run of another model list must not linger
    command = "speechtok " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    results = evaluate(args.models, utts, cfg, data_name=str(args.data), alignments=alignments, command=command)
    write_results(results, out)
    print(markdown(collect([(out, results)])).split("\n", 2)[2].strip())
    problems = len(results["data"]["skipped"]) + sum(r["status"] == "failed" or bool(r.get("failures"))
                                                     for r in results["rows"])
    log.warning("wrote %s (%d rows, %d utterances%s)", out, len(results["rows"]), results["data"]["scored"],
                f"; {len(results['data']['skipped'])} skipped" if results["data"]["skipped"] else "")
    return 1 if problems else 0
