"""`speechtok fetch NAME...`: download zoo tokenizers ahead of time (for cluster nodes without a network)."""

from __future__ import annotations

import argparse
import difflib
import logging

from ..errors import SpeechtokError

log = logging.getLogger("speechtok")


def register(subparsers) -> None:
    p = subparsers.add_parser("fetch", help="download zoo tokenizers' official weights into the cache",
                              description="Download and verify the files of zoo tokenizers (`speechtok list` shows "
                                          "them) so that later loads need no network: hub files go to the Hugging "
                                          "Face cache (HF_HOME), others to $SPEECHTOK_CACHE (~/.cache/speechtok).")
    p.add_argument("names", nargs="+", metavar="NAME", help="zoo names, e.g. mimi dac-16khz")
    p.set_defaults(func=cmd_fetch)


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..adapters.zoo import ZOO, fetch

    failed = 0
    for name in args.names:
        if name not in ZOO:
            near = difflib.get_close_matches(name, list(ZOO), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(near)}? " if near else ""
            log.error("%s: not a zoo name (%sknown: %s)", name, hint, ", ".join(ZOO))
            failed += 1
            continue
        try:
            print(fetch(ZOO[name]))
        except SpeechtokError as e:
            log.error("%s", e)
            failed += 1
    return 1 if failed else 0
