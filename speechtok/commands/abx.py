"""`speechtok abx MODEL|mfcc --data SET|MANIFEST|DIR`: phone ABX error (within and across speaker) of any
frame-level features: a tokenizer's codes, its encoder's output, or MFCCs."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import one_line

log = logging.getLogger("speechtok")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "abx", help="phone ABX error of a tokenizer's codes, its encoder features, or MFCCs",
        description="ZeroSpeech-style phone ABX (within and across speaker) on the phone alignments of the data "
                    "(SIL targets and 'uniform' rows left out), with DTW over frames and the angular distance. "
                    "Codes are compared through their codebook embeddings. `speechtok eval --metrics abx` puts "
                    "the same figure (codes, first n_q codebooks) on the leaderboard.")
    p.add_argument("model", metavar="MODEL|mfcc", help="tokenizer name, checkpoint directory, plugin, or mfcc")
    p.add_argument("--data", required=True, help="LS-test, SO-test, a manifest or a directory")
    p.add_argument("--data-root", default=None, help="the shared/data directory for set names")
    p.add_argument("--split", default=None, help="keep only this split of a manifest")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--alignments", default=None, help="alignments.tsv (default: the set's own)")
    p.add_argument("--features", choices=("codes", "latent"), default="codes",
                   help="codes (their codebook embeddings) or latent (the encoder output before quantization)")
    layers = p.add_mutually_exclusive_group()
    layers.add_argument("--layers", type=int, default=None,
                        help="codes: the sum of the first N codebooks, decoded (default 1)")
    layers.add_argument("--only-layers", default=None, metavar="L[,L...]",
                        help="codes: only these 1-based layers' own codebook vectors, e.g. 1")
    p.add_argument("--mode", nargs="+", choices=("within", "across"), default=["within", "across"])
    p.add_argument("--context", choices=("within", "any"), default="within",
                   help="triplets share the neighbouring phones (within, ZeroSpeech) or not (any)")
    p.add_argument("--max-triplets", type=int, default=20000, help="triplets drawn per mode (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--items", default=None, metavar="FILE", help="also write the ZeroSpeech .item file here")
    p.add_argument("-o", "--output", default=None, help="write the scores as JSON here")
    p.set_defaults(func=cmd_abx)


def cmd_abx(args: argparse.Namespace) -> int:
    from ..eval.abx import abx, abx_protocol, items_from_alignments, write_item_file
    from ..eval.evaluate import load_references
    from ..eval.features import extractor
    from ..eval.sets import alignments_path, utterances
    from ..fileio import write_text
    from ..runtime.progress import progress

    try:
        utts = utterances(args.data, args.data_root, args.split)[: args.limit]
    except (ValueError, FileNotFoundError, KeyError) as e:
        log.error("%s", one_line(e))
        return 1
    alignments = args.alignments or alignments_path(args.data, args.data_root)
    if alignments is None:
        log.error("%s: no phone alignments found; pass --alignments FILE", args.data)
        return 1
    layers = [int(x) for x in args.only_layers.split(",") if x] if args.only_layers else (args.layers or 1)
    fn, described = extractor(args.model, args.features, layers, args.device)
    refs, skipped = load_references(utts)
    items = items_from_alignments(alignments, {r.utt.id: r.utt.speaker for r in refs})
    if args.items:
        write_item_file(items, args.items)
    feats, failed = {}, []
    for ref in progress(refs, desc="features", unit="utt", disable=args.quiet > 0):
        try:
            feats[ref.utt.id] = fn(ref.wav, ref.sample_rate)
        except Exception as e:
            failed.append({"id": ref.utt.id, "reason": one_line(e)})
            log.warning("%s: %s", ref.utt.id, failed[-1]["reason"])
    scores = {m: abx(feats, items, m, args.max_triplets or None, args.seed, args.context).to_json() for m in args.mode}
    result = {"model": args.model, "features": described, "data": str(args.data), "alignments": str(alignments),
              "utterances": len(feats), "skipped": skipped, "failed": failed, "items": len(items),
              "scores": scores, "protocol": abx_protocol(args.max_triplets or None, args.seed, args.context)}
    for mode, s in scores.items():
        err = "n/a" if s["error"] is None else f"{100 * s['error']:.2f}%"
        print(f"ABX {mode} speaker ({args.context} context)\t{err}\t{s['triplets']} triplets, "
              f"{s['phone_pairs']} phone pairs")
    if args.output:
        write_text(Path(args.output), json.dumps(result, indent=1) + "\n")
    return 1 if skipped or failed else 0
