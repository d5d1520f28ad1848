"""`speechtok data prepare SET --from PATH [-o DATA_ROOT]`: an evaluation set (LS-test, SO-test, LS-dev, SO-dev)
built from the public corpus the user has, checked file by file (see speechtok.eval.prepare)."""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import one_line

log = logging.getLogger("speechtok")
SETS = ("LS-test", "LS-dev", "SO-test", "SO-dev")  # = speechtok.eval.prepare.SET_SOURCES, without importing it


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="evaluation data: prepare LS-test / SO-test from the public corpora",
                              description="Evaluation data a user can get.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = sub.add_parser(
        "prepare", help="build an evaluation set from the public corpus",
        description="Build an evaluation set from the corpus you have: LS-test from LibriSpeech test-other and "
                    "LS-dev from train-clean-100 (a directory or the .tar.gz from https://www.openslr.org/12), "
                    "SO-test / SO-dev from speechocean762 (its WAVE/ folder). Every file is checked against the "
                    "sha256 the package ships and resampled to 16 kHz where it is not; nothing is written unless "
                    "all match. `speechtok eval --data SET` then finds it.")
    prep.add_argument("set", choices=SETS, metavar="SET", help=f"one of {', '.join(SETS)}")
    prep.add_argument("--from", dest="source", required=True, metavar="PATH",
                      help="the corpus: a directory (searched by file name) or a .tar.gz / .tgz / .tar archive")
    prep.add_argument("-o", "--output", default=None, metavar="DATA_ROOT",
                      help="data root to write (default: $SPEECHTOK_DATA, else ~/.local/share/speechtok)")
    prep.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from ..eval.prepare import PrepareError, prepare
    from ..eval.sets import DATA_ENV, user_data_root

    root = args.output or os.environ.get(DATA_ENV) or user_data_root()
    try:
        manifest = prepare(args.set, args.source, root)
    except (PrepareError, OSError) as e:
        log.error("%s", one_line(e))
        return 1
    log.warning("prepared %s in %s (%s)", args.set, root, manifest)
    return 0
