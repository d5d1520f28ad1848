"""`speechtok convert KIND SRC -o OUT [--unpickle]`: pickled checkpoints -> safetensors (see speechtok.convert)."""

from __future__ import annotations

import argparse
import logging

from ..errors import one_line

log = logging.getLogger("speechtok")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="pickled checkpoints (k-means joblib, peer .pt) -> safe safetensors files",
        description="Convert a checkpoint that would need a full unpickle into files speechtok loads safely. "
                    "Unpickling can run code hidden in the file: it happens only here, and only with --unpickle. "
                    "`speechtok convert --list` shows the known KINDs.")
    p.add_argument("kind", nargs="?", metavar="KIND", help="the source format (see --list)")
    p.add_argument("src", nargs="?", metavar="SRC", help="the file or directory to convert")
    p.add_argument("-o", "--output", help="where to write the converted checkpoint")
    p.add_argument("--unpickle", action="store_true", help="allow unpickling SRC (only for files you trust)")
    p.add_argument("--list", action="store_true", help="list the known KINDs and exit")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..convert import convert, kinds

    if args.list:
        for kind, text in kinds().items():
            print(f"{kind}\t{text}")
        return 0
    if not (args.kind and args.src and args.output):
        log.error("convert needs KIND SRC -o OUT (or --list)")
        return 2
    try:
        out = convert(args.kind, args.src, args.output, trust_pickle=args.unpickle)
    except (OSError, ValueError) as e:
        log.error("%s", one_line(e))
        return 1
    print(out)
    return 0
