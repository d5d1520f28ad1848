"""`speechtok pretokenize MODEL INPUT... -o OUT_DIR`: a corpus -> a directory of Parquet shards of codes.

Exit 0 when the run completed, even if some files were skipped (they are logged in one line each, listed in
OUT_DIR/.failures.tsv and counted in the summary): over a large corpus a few bad files are expected, and a
launcher (torchrun, SLURM) should not count the job as failed. `--strict` exits 1 when any file was skipped.
Exit 1 when the run could not complete (another tokenizer's directory, unreadable manifest, ...), 2 on usage
errors. A killed run is resumed by running the same command again.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("speechtok")


def register(sub) -> None:
    p = sub.add_parser(
        "pretokenize", help="audio corpus -> sharded Parquet dataset of codes (resumable, multi-process)",
        description="Encode a corpus into Parquet shards (id, codes [Q][T], num_frames, duration_s, source_path) "
                    "that pyarrow, pandas, polars and Hugging Face datasets read without speechtok. Run the same "
                    "command again to resume a killed run. Under torchrun each rank does its own part.",
        epilog="Exit status: 0 when the run completed, even with skipped files (see OUT_DIR/.failures.tsv; "
               "--strict makes that 1); 1 when it could not complete; 2 on usage errors.")
    p.add_argument("model", metavar="MODEL", help="tokenizer name or checkpoint directory")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="directory (scanned recursively), manifest (.tsv with a path column, .jsonl with path keys) "
                        "or audio file")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="dataset directory (created)")
    p.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default: all)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when there is one, else cpu)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="model precision (autocast for the half ones)")
    p.add_argument("--num-workers", type=int, default=2,
                   help="reader processes that read ahead (0: a reader thread in the main process)")
    p.add_argument("--read-ahead", action=argparse.BooleanOptionalAction, default=None,
                   help="read the next files while the model encodes (default: on a GPU; on the CPU, where both "
                        "need the same cores, files are read between forward passes by torch's threads)")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="padded audio per batch, in seconds (default: 200 on a GPU, 50 on the CPU)")
    p.add_argument("--max-batch-size", type=int, default=64, help="items per batch at most")
    p.add_argument("--bucket-size", type=int, default=128,
                   help="consecutive items read together and sorted by length into batches")
    p.add_argument("--shard-size", type=int, default=1000, help="items per shard")
    p.add_argument("--num-parts", type=int, default=None, help="split the inputs into N disjoint parts "
                                                               "(default: torchrun's WORLD_SIZE, else 1)")
    p.add_argument("--part", type=int, default=None, help="the part to do, 0..N-1 (default: torchrun's RANK, else 0)")
    p.add_argument("--root", default=None, help="base of relative manifest paths")
    p.add_argument("--split", action="append", default=[], dest="splits",
                   help="keep only manifest rows of this split (repeatable)")
    p.add_argument("--skip-missing", action="store_true",
                   help="go on when a manifest lists files that are missing (they are listed in .failures.tsv)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="encode the audio a truncated file holds (default: such a file is skipped as a failure)")
    p.add_argument("--dedup", action="store_true",
                   help="also store de-duplicated units and their run lengths (durations)")
    p.add_argument("--lm", default=None, metavar="PATTERN",
                   help="also write LM-ready `input_ids` in one vocabulary (.vocab.json): flatten, delay, "
                        "semantic_first, parallel or units (see speechtok.lm)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any file was skipped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pretokenize)


def cmd_pretokenize(args: argparse.Namespace) -> int:
    import os

    from ..errors import one_line
    from ..pretokenize import FAILURES_NAME, MissingInputsError, pretokenize

    if (args.num_parts is None) != (args.part is None):
        log.error("give both --num-parts and --part, or neither")
        return 2
    rank0 = int(os.environ.get("RANK", "0")) == 0  # under torchrun one progress bar, not one per rank
    try:
        result = pretokenize(
            args.model, args.inputs, args.output, n_q=args.n_q, num_parts=args.num_parts, part=args.part,
            shard_size=args.shard_size, batch_seconds=args.batch_seconds, max_batch_size=args.max_batch_size,
            bucket_size=args.bucket_size, num_workers=args.num_workers, read_ahead=args.read_ahead,
            device=args.device, dtype=args.dtype,
            root=args.root, splits=args.splits, skip_missing=args.skip_missing, dedup=args.dedup,
            allow_truncated=args.allow_truncated, lm=args.lm,
            progress=not args.no_progress and (args.part is not None or rank0),
        )
    except MissingInputsError as e:  # its own message names Python's arguments
        log.error("%s; pass --root DIR (the base of relative paths) or --skip-missing", e.what)
        return 1
    except ValueError as e:  # settings out of range (SpeechtokErrors are printed by cli.main)
        log.error("%s", e)
        return 2
    except OSError as e:  # the output directory stopped taking writes (a full disk); a rerun resumes
        log.error("%s: %s", args.output, one_line(e))
        return 1
    part = "" if result.num_parts == 1 else f" (part {result.part} of {result.num_parts})"
    skipped = f", {result.shards_skipped} already there" if result.shards_skipped else ""
    log.warning("pretokenized %d files%s, %.2f h of audio in %.0f s (%.0fx real time): %d shards written%s, in %s",
                result.rows, part, result.audio_seconds / 3600, result.wall_seconds, result.realtime_factor,
                result.shards_written, skipped, result.out_dir)
    if result.num_failed:
        earlier = result.num_failed - len(result.failures)
        log.warning("%d files skipped%s: see %s", result.num_failed,
                    f" ({earlier} by an earlier run)" if earlier else "", result.out_dir / FAILURES_NAME)
    return 1 if args.strict and result.num_failed else 0
