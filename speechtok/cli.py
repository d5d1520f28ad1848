"""`speechtok encode | decode | info | list`: stdout carries data, stderr carries logs; exit 0 on success,
1 when any input failed (the others are still done), 2 on usage errors."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import one_line
from .fileio import remove_stale_temps

if TYPE_CHECKING:  # torch is imported by the commands that need it, not by `speechtok --help`
    from .tokenizer import Tokenizer

log = logging.getLogger("speechtok")

CODES_SUFFIXES = (".npy", ".pt", ".safetensors")
DECODED_SUFFIXES = (".wav", ".flac")  # what `decode` writes
CODES_NOT_AUDIO = "codes are not written under an audio file name; name the output .npy, .pt or .safetensors"
AUDIO_NOT_CODES = "decoded audio is not written under a codes file name; name the output .wav or .flac"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides += extra  # `train codec --run-dir X key=value`: overrides after an option
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING - 10 * args.verbose + 10 * args.quiet,
                        format="speechtok: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, OneLineLogs) for f in handler.filters):
            handler.addFilter(OneLineLogs())
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from .runtime.memory import tune_malloc

    tune_malloc()
    from .errors import SpeechtokError

    previous = _terminate_as_interrupt()
    try:
        return args.func(args)
    except SpeechtokError as e:
        log.error("%s", e)
        return 1
    except Terminated:
        log.error("terminated (SIGTERM); what was written before is complete, temp files are removed")
        return 143
    except KeyboardInterrupt:
        log.error("interrupted; what was written before is complete, temp files are removed")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class OneLineLogs(logging.Filter):
    """A log record is one line on stderr: a newline inside it (a file named with one) is written as \\n."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\n" in message or "\r" in message:
            record.msg, record.args = message.replace("\r", "\\r").replace("\n", "\\n"), None
        return True


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as for Ctrl-C (atomic writes drop their temps)."""


def _terminate_as_interrupt():
    """Make SIGTERM unwind like Ctrl-C; returns the previous handler (None off the main thread)."""
    def handler(signum, frame):
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechtok", description="Discrete speech tokenizers and neural audio codecs.")
    p.add_argument("--version", action="version", version=f"speechtok {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logs on stderr")
    p.add_argument("-q", "--quiet", action="count", default=0, help="fewer logs on stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    e = sub.add_parser("encode", help="audio files -> codes files",
                       description="Encode audio into codes. One input: -o is the output file (or name a new .npy, "
                                   ".pt or .safetensors file second: `encode in.wav out.npy`). Several inputs "
                                   "or a directory: -o is a directory (subfolders mirrored). No -o: beside each input.")
    e.add_argument("inputs", nargs="+", metavar="IN", help="audio files or directories (scanned recursively)")
    e.add_argument("-o", "--output", help="output file (one input) or directory")
    _model_arg(e)
    e.add_argument("--n-q", type=int, default=None, help="codebooks to keep (default: all)")
    e.add_argument("--format", choices=("npy", "pt", "safetensors"), default=None,
                   help="codes file format (default: from -o's suffix, else npy)")
    e.add_argument("--allow-truncated", action="store_true",
                   help="encode the audio a truncated file holds (default: such a file is an error)")
    e.add_argument("--dedup", action="store_true",
                   help="single-codebook units (HuBERT): collapse repeats into runs, written as safetensors with "
                        "`units` and `run_lengths` (for LM training; speechtok.lm.unit_runs.UnitRuns reads them)")
    e.add_argument("--stream", action="store_true",
                   help="encode as the audio arrives: one input (a file, or - for raw 16-bit mono PCM at the model's "
                        "rate on stdin); each frame's codes printed on stdout once complete (`frame code_1 ...`), "
                        "or one codes file with -o; the codes are the offline codes")
    e.add_argument("--chunk-ms", type=float, default=20.0, help="--stream: audio read at a time (ms)")
    e.set_defaults(func=cmd_encode)

    d = sub.add_parser("decode", help="codes files -> audio",
                       description="Decode codes back to audio. The tokenizer is found from the codes' metadata. "
                                   "One input: -o is the output (or name a new .wav or .flac second).")
    d.add_argument("inputs", nargs="+", metavar="CODES", help="codes files or directories")
    d.add_argument("-o", "--output", help="output .wav (one input) or directory (default: <stem>.decoded.wav beside)")
    d.add_argument("--model", default=None, help="decode with this tokenizer instead of the one the codes name")
    d.add_argument("--device", default=None, help="torch device (default: cpu)")
    d.add_argument("--steps", type=int, default=None, help="flow decoders: ODE steps (default: the model's)")
    d.add_argument("--method", choices=("euler", "midpoint"), default=None,
                   help="flow decoders: ODE solver (default: the model's)")
    d.add_argument("--overwrite", action="store_true",
                   help="replace existing audio files that speechtok did not write (default: refuse; a decoded "
                        "file of an earlier run is replaced without it)")
    d.set_defaults(func=cmd_decode)

    i = sub.add_parser("info", help="describe a tokenizer, a codes file or a pre-tokenized dataset")
    i.add_argument("target", metavar="MODEL|CODES|DATASET",
                   help="tokenizer name, checkpoint directory, codes file, or a `pretokenize` output directory "
                        "(token statistics: tokens/s, vocabulary, entropy and codes used per codebook)")
    i.add_argument("--json", action="store_true", help="print JSON on stdout")
    i.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train a tokenizer from a recipe",
                       description="Train from a recipe (a YAML file or a bundled name such as codec). "
                                   "Overrides are key=value with dotted keys, e.g. train.steps=100. Running again "
                                   "with the same --run-dir resumes. Several GPUs or nodes: launch with torchrun, "
                                   "e.g. `torchrun --nproc_per_node 8 -m speechtok.cli train codec` "
                                   "(train.batch_size is per process).")
    t.add_argument("recipe", help="recipe file or bundled recipe name")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides")
    t.add_argument("--run-dir", default=None, help="run directory (default: runs/<recipe name>)")
    t.set_defaults(func=cmd_train)

    x = sub.add_parser("export", help="write the inference checkpoint of a training run")
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("-o", "--output", required=True, help="checkpoint directory to write")
    x.add_argument("--card", default=None, help="model card (markdown) to include as README.md")
    x.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                   help="how the weights are stored (loading casts them back to float32)")
    x.add_argument("--dtype-only", action="append", default=[], metavar="MODULE",
                   help="store only this module's weights in --dtype, e.g. decoder (repeatable; default: all)")
    x.add_argument("--no-ema", action="store_true",
                   help="export the last step's weights even when the run keeps an EMA (the default exports the EMA)")
    x.set_defaults(func=cmd_export)

    ls = sub.add_parser("list", help="list the available tokenizers (bundled and plugins)")
    ls.add_argument("--json", action="store_true", help="print JSON on stdout")
    ls.set_defaults(func=cmd_list)

    from importlib import import_module

    from .commands import COMMANDS

    for name in COMMANDS:  # modules kept light: they import their heavy parts inside their functions
        import_module(f".commands.{name}", __package__).register(sub)
    return p


def _model_arg(p: argparse.ArgumentParser) -> None:
    from .registry import DEFAULT_TOKENIZER

    p.add_argument("-m", "--model", default=DEFAULT_TOKENIZER,
                   help=f"tokenizer name or checkpoint directory (default: {DEFAULT_TOKENIZER})")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")


# -- commands ---------------------------------------------------------------------------------------------


def cmd_encode(args: argparse.Namespace) -> int:
    from .audio import AUDIO_EXTENSIONS
    from .corpora.files import check_targets, names_directory, plan
    from .registry import load

    if not _output_as_second_positional(args, CODES_SUFFIXES, "codes"):
        return 2
    if args.stream:
        from .commands.encode_stream import run

        return run(args)
    single = len(args.inputs) == 1 and not Path(args.inputs[0]).is_dir() and not names_directory(args.output)
    fmt = args.format or _format_from(args.output, single)
    suffix = Path(args.output).suffix if args.output and single else ""
    if args.format and suffix in CODES_SUFFIXES and suffix != f".{args.format}":
        log.error("%s: --format %s disagrees with the file's suffix (codes are read by their suffix); name it "
                  "%s or leave --format out", args.output, args.format, Path(args.output).with_suffix("." + fmt))
        return 2
    if args.dedup:
        fmt = "safetensors"  # units and run lengths: two arrays and their metadata in one file
    jobs = _plan_or_fail(lambda: plan(args.inputs, args.output, "." + fmt))
    if not jobs:
        log.error("no audio files found in %s", " ".join(args.inputs))
        return 1
    check_targets(jobs, AUDIO_EXTENSIONS, CODES_NOT_AUDIO)
    tok = load(args.model, device=args.device)
    n_q = tok.check_n_q(args.n_q)  # once, not once a file
    if args.dedup:
        from .lm.unit_runs import deduplicate  # HuBERT's modules: only for units

    def encode_one(job) -> tuple[str, float]:
        codes = tok.encode_file(job.source, n_q=n_q, allow_truncated=args.allow_truncated)
        frames = int(codes.lengths[0])
        seconds = (frames / codes.frame_rate if codes.num_samples is None
                   else int(codes.num_samples[0]) / codes.sample_rate)
        if args.dedup:  # units files are always safetensors: save() takes the format from their suffix
            runs = deduplicate(codes)
            _write(job.target, lambda: runs.save(job.target))
            what = f"{runs.units.numel()} unit runs from {frames} frames"
        else:
            _write(job.target, lambda: codes.save(job.target, fmt))
            what = f"codes [{codes.codes.shape[1]}, {frames}]"
        return f"{what}, {seconds:.2f} s of audio at {codes.frame_rate:g} frames/s, {tok.name}", seconds

    return _run_jobs(jobs, encode_one, "encode", tok.name, args.output)


def cmd_decode(args: argparse.Namespace) -> int:
    from . import audio
    from .codes import Codes
    from .corpora.files import check_targets, plan

    if not _output_as_second_positional(args, DECODED_SUFFIXES, "audio"):
        return 2
    jobs = _plan_or_fail(lambda: plan(args.inputs, args.output, ".wav", CODES_SUFFIXES, ".decoded.wav"))
    if not jobs:
        log.error("no codes files found in %s", " ".join(args.inputs))
        return 1
    check_targets(jobs, CODES_SUFFIXES, AUDIO_NOT_CODES)
    if not args.overwrite and not _spares_recordings(jobs):
        return 1
    models: dict[str, Tokenizer] = {}
    sampling = {k: v for k, v in (("steps", args.steps), ("method", args.method)) if v is not None}

    def decode_one(job) -> tuple[str, float]:
        codes = Codes.load(job.source)
        tok = _tokenizer_for(codes, args.model, args.device, models, job.source)
        wav = tok.decode(codes, **sampling)[0]
        _write(job.target, lambda: audio.write(job.target, wav, tok.sample_rate))
        seconds = wav.shape[-1] / tok.sample_rate
        return (f"{seconds:.2f} s at {tok.sample_rate} Hz from codes [{codes.codes.shape[1]}, "
                f"{int(codes.lengths[0])}], {tok.name}"), seconds

    return _run_jobs(jobs, decode_one, "decode", lambda: ", ".join(sorted({t.name for t in models.values()})),
                     args.output)


def cmd_info(args: argparse.Namespace) -> int:
    from .codes import Codes

    target = Path(args.target)
    spec = re.match(r"[A-Za-z][\w.-]*:", args.target) and not target.exists()  # `dac:/path/weights.pt`
    if target.suffix in CODES_SUFFIXES and not target.exists() and not spec:
        from .errors import CodesError

        raise CodesError(f"{target}: no such file")
    from .lm.stats import dataset_stats, is_dataset

    if is_dataset(target):  # a pre-tokenized dataset: what an LM trained on it sees
        _print_mapping(dataset_stats(target), args.json)
        return 0
    if target.suffix in CODES_SUFFIXES and target.is_file() and not spec:
        codes = Codes.load(target)
        info = {**codes.metadata(), "num_frames": int(codes.lengths[0]),
                "duration_s": round(int(codes.lengths[0]) / codes.frame_rate, 3)}
    else:
        from .registry import load

        info = describe(load(args.target))
    _print_mapping(info, args.json)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .adapters.zoo import ZOO
    from .registry import available

    entries = [{"name": e.name, "kind": e.kind, "where": e.where,
                **(_zoo_facts(ZOO[e.name]) if e.kind.startswith("zoo") else {})} for e in available()]
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not entries:
        log.warning("no tokenizers available: no bundled checkpoint and no plugin installed")
    for e in [] if args.json else entries:
        facts = (f"\t{e['sample_rate'] / 1000:g} kHz, {e['frame_rate']:g} frames/s, {e['codebooks']}, "
                 f"kbps {e['kbps']}, {e['licence']}") if "licence" in e else ""
        print(f"{e['name']}\t{e['kind']}\t{e['where']}{facts}")
    return 0


def _zoo_facts(entry) -> dict:
    """What a zoo entry publishes (rate, frame rate, codebooks, bitrate, licence), for `speechtok list`."""
    return {"about": entry.about, "sample_rate": entry.sample_rate, "frame_rate": entry.frame_rate,
            "codebooks": entry.codebooks, "kbps": entry.kbps, "licence": entry.licence}


def cmd_train(args: argparse.Namespace) -> int:
    from .training.recipe import load_recipe
    from .training.trainer import Trainer

    if not args.quiet:  # a training run reports resume and checkpoints
        logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    try:
        recipe = load_recipe(args.recipe, args.overrides)
    except (OSError, ValueError) as e:
        log.error("%s", e)
        return 1
    run_dir = args.run_dir or str(Path("runs") / Path(args.recipe).stem)
    from .training import distributed

    try:
        trainer = Trainer(recipe, run_dir)
        trainer.fit()
    except (ValueError, FileNotFoundError) as e:  # a bad recipe value found when the task or the data is built
        from .corpora.manifest import MissingFilesError

        log.debug("traceback", exc_info=True)
        if isinstance(e, MissingFilesError):  # the hint in the CLI's words, not the Python API's
            log.error("%s; set data.root=DIR (where the manifest's relative paths start) or fix the manifest",
                      e.what)
        else:
            log.error("%s", one_line(e))
        return 1
    finally:
        distributed.teardown()
    if trainer.stopped_by is not None:  # it said so, with the step of its checkpoint
        return 143 if trainer.stopped_by == "SIGTERM" else 130
    if distributed.env_from_environ().is_main:  # under torchrun, one line for the whole job
        log.info("done: %s (export it with: speechtok export %s -o CKPT_DIR)", run_dir, run_dir)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .training.trainer import load_run

    try:
        trainer = load_run(args.run_dir)
    except (OSError, ValueError) as e:
        log.error("%s", e)
        return 1
    import torch

    card = Path(args.card).read_text() if args.card else None
    try:
        out = trainer.export(use_ema=not args.no_ema).save(args.output, card=card, dtype=getattr(torch, args.dtype),
                                                           dtype_modules=tuple(args.dtype_only))
    except ValueError as e:
        log.error("%s", e)
        return 1
    log.warning("wrote %s (step %d)", out, trainer.step)
    return 0


# -- helpers ----------------------------------------------------------------------------------------------


def describe(tok) -> dict:
    return {
        "name": tok.name, "family": tok.family, "source": tok.source, "sample_rate": tok.sample_rate,
        "frame_rate": tok.frame_rate, "hop_length": tok.hop_length, "num_codebooks": tok.num_codebooks,
        "codebook_size": tok.codebook_size, "bitrate": tok.bitrate, "config_hash": tok.config_hash,
        "params": sum(p.numel() for p in tok.parameters()),
        **tok.adapter_info,  # peers (speechtok/adapters): package, checkpoint hash, batching
        **({"streams": {k: f"codebooks {a + 1}..{b}" for k, (a, b) in tok.streams.items()}} if tok.streams else {}),
        "decoder": "none (encode-only)" if tok.decoder is None else type(tok.decoder).__name__,
        "streaming": _streaming(tok),
        "onnx_export": _onnx_export(tok),
    }


def _streaming(tok) -> str:
    """What `speechtok.streaming` can do with `tok`: the latency of each stream, or why it cannot."""
    from .streaming import DecodeStream, EncodeStream, NotStreamableError

    parts = []
    for what, make in (("encode", EncodeStream), ("decode", DecodeStream)):
        try:
            parts.append(f"{what} {1000 * make(tok).latency_seconds:.0f} ms")
        except NotStreamableError as e:
            parts.append(f"{what}: no ({str(e).partition(': ')[2]})")
    return "; ".join(parts)


def _onnx_export(tok) -> str:
    from .export.onnx import OnnxExportError, check_exportable

    try:
        check_exportable(tok)
    except OnnxExportError as e:
        return f"no ({str(e).partition(': ')[2]})"
    return "yes (speechtok export-onnx)"


def _tokenizer_for(codes, model: str | None, device, cache: dict, source: Path):
    from .errors import CodesError
    from .registry import load

    name = model or codes.tokenizer.get("source") or codes.tokenizer.get("name")
    if not name:
        raise CodesError(f"{source}: the codes do not say which tokenizer made them; pass --model")
    if name not in cache:
        cache[name] = load(name, device=device)
    try:
        cache[name].check_codes(codes)
    except CodesError as e:
        raise CodesError(f"{source}: {e}") from None
    return cache[name]


def _run_jobs(jobs, work, verb: str, tokenizer, output: str | None) -> int:
    """`_run_each` between two sweeps of the planned outputs' temp files: those a killed earlier run left, and,
    on Ctrl-C / SIGTERM, this run's (a signal can land between a temp file's creation and its cleanup)."""
    targets = [job.target for job in jobs]
    remove_stale_temps(targets)
    try:
        return _run_each(jobs, work, verb, tokenizer, output)
    except KeyboardInterrupt:
        remove_stale_temps(targets)
        raise


def _run_each(jobs, work, verb: str, tokenizer, output: str | None) -> int:
    """Run each job (`work(job)` -> (what was written, seconds of audio)); a failing one is logged in one line and
    the rest go on. On success one line says what was written: the file for one job, the count for several
    (`tokenizer` is the name, or a callable giving it once the work is done). Exit code 1 if any failed."""
    from .errors import SpeechtokError, one_line, with_source
    from .runtime.progress import progress

    failed, seconds = 0, 0.0
    bar = progress(jobs, desc=verb, unit="file", disable=len(jobs) < 2)
    for job in bar:
        try:
            what, job_seconds = work(job)
            seconds += job_seconds
            if len(jobs) == 1:
                log.warning("wrote %s: %s", job.target, what)
            else:
                log.info("%s -> %s: %s", job.source, job.target, what)
        except SpeechtokError as e:
            failed += 1
            log.error("%s", with_source(e, job.source))
        except (OSError, ValueError, RuntimeError) as e:
            failed += 1
            log.error("%s: %s", job.source, one_line(e))
    if failed and len(jobs) > 1:  # one file: its own line said it all
        log.error("%d of %d files failed", failed, len(jobs))
    if len(jobs) > 1 and failed < len(jobs):
        name = tokenizer() if callable(tokenizer) else tokenizer
        where = output or "beside the inputs"
        log.warning("%sd %d files, %.1f s of audio, %s -> %s", verb, len(jobs) - failed, seconds, name, where)
    return 1 if failed else 0


def _write(target: Path, write) -> None:
    """Run `write` (an atomic write of `target`); an OSError (a full disk, a read-only directory) becomes an
    OutputError naming the target."""
    from .errors import OutputError

    try:
        write()
    except OSError as e:
        raise OutputError(f"cannot write {target} ({one_line(e)})") from None


def _output_as_second_positional(args: argparse.Namespace, suffixes: tuple[str, ...], kind: str) -> bool:
    """`speechtok encode in.wav out.npy` (EnCodec's habit) with no -o: where the second of two names is a file
    that does not exist yet and ends in one of `suffixes`, it is the output. Where it does not exist and ends in
    anything else, log one line saying what to do and return False (a usage error)."""
    if args.output is not None or len(args.inputs) != 2 or Path(args.inputs[1]).exists():
        return True
    first, second = Path(args.inputs[0]), Path(args.inputs[1])
    names = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
    if second.suffix.lower() in suffixes and first.is_file():
        args.inputs, args.output = [args.inputs[0]], args.inputs[1]
        return True
    if second.suffix.lower() in suffixes:
        log.error("%s: the output of two names must follow an input file (%s is not one); for a directory "
                  "give -o DIR", second, first)
    else:
        log.error("%s: no such file; to write %s there, name it %s (%s %s OUT, or -o OUT)", second, kind, names,
                  args.command, first)
    return False


def _spares_recordings(jobs) -> bool:
    """Decoding into a folder of recordings would replace them with their resynthesis: any existing target that
    speechtok did not write is refused, before anything is decoded."""
    from .audio import written_by_speechtok

    taken = [job.target for job in jobs if job.target.exists() and not written_by_speechtok(job.target)]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        log.error("%s%s: exists and was not written by speechtok (a recording?); refusing to replace it with "
                  "decoded audio: choose another -o, or pass --overwrite", taken[0], more)
    return not taken


def _plan_or_fail(make):
    from .errors import SpeechtokError

    try:
        return make()
    except ValueError as e:
        raise SpeechtokError(str(e)) from None


def _format_from(output: str | None, single: bool) -> str:
    if output and single and Path(output).suffix in CODES_SUFFIXES:
        return Path(output).suffix[1:]
    return "npy"


def _print_mapping(info: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        print(f"{key}\t{json.dumps(value) if isinstance(value, dict) else value}")


if __name__ == "__main__":
    sys.exit(main())
