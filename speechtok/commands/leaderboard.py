"""`speechtok leaderboard RESULTS.json... -o site/`: a Markdown table and a static HTML page."""

from __future__ import annotations

import argparse
import logging

from ..errors import one_line

log = logging.getLogger("speechtok")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="results of `speechtok eval` -> Markdown table and static HTML page",
        description="Merge results files of `speechtok eval` into site/index.html (sortable tables, quality "
                    "versus bitrate plots, the original beside each resynthesis) and site/leaderboard.md. "
                    "One table per evaluation set. Plots need matplotlib (pip install 'speechtok[leaderboard]').")
    p.add_argument("results", nargs="+", metavar="RESULTS.json")
    p.add_argument("-o", "--output", required=True, help="site directory to write")
    p.add_argument("--samples", type=int, default=3, help="utterances to listen to per set (default 3)")
    p.add_argument("--no-plots", action="store_true", help="leave the plots out (no matplotlib needed)")
    p.add_argument("--plot-format", choices=("svg", "png"), default="svg")
    p.add_argument("--label", action="append", default=[], metavar="MODEL=TEXT",
                   help="label MODEL's rows (as named to `speechtok eval`), over any label the results carry")
    p.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..eval.leaderboard import build_leaderboard
    from .evaluate import parse_labels

    try:
        files = build_leaderboard(args.results, args.output, samples=args.samples, plots=not args.no_plots,
                                  plot_format=args.plot_format, labels=parse_labels(args.label))
    except (OSError, ValueError, ImportError) as e:
        log.error("%s", one_line(e))
        return 1
    print(files.html)
    log.info("wrote %s, %s, %d plot(s), %d sample file(s)", files.html, files.markdown, len(files.plots),
             len(files.samples))
    return 0
