#!/usr/bin/env python3
"""CPU speed of the default speechtok codec, beside peer codecs in the same process (a benchmark, not a test).

For `build_codec(CodecConfig())` with random weights (eval mode, denormals flushed, 2 threads), on 10 s clips
at batch 1 and 8, it prints encode / decode x-realtime of

- the pure model forward: `encoder` + `quantizer.encode`, and `quantizer.decode` + `decoder`;
- the API: `Tokenizer.encode(wav, 16000)` and `Tokenizer.decode(codes)`,

and the API's overhead over the model in %; the GFLOPs per second of audio of encode and decode (counted with
`torch.utils.flop_counter.FlopCounterMode`, plus LSTMs, which it does not count; FFTs are not counted); the
start-up time of the `speechtok` CLI (`speechtok --help`, median of several runs); and the same table rows for
the peer codecs of ../shared/peers/peer_speed.py, measured by its own timing code in this process.

The peers need their venv (`bash ../shared/peers/setup_venv.sh` -> /tmp/peers-venv), which must also be able
to import speechtok's dependencies; `--no-deps` leaves its torch alone. This script puts the repository on
`sys.path`. With `--peers none` any venv with speechtok works:

    /tmp/peers-venv/bin/pip install --no-deps vector-quantize-pytorch einx loguru torch-einops-utils \
        frozendict soxr                                                     # once, beside setup_venv.sh
    /tmp/peers-venv/bin/python benchmarks/speed.py                          # + encodec_24k, b=1 and 8
    /tmp/peers-venv/bin/python benchmarks/speed.py --peers none --batches 8 --malloc tuned
    .venv/bin/python benchmarks/speed.py --peers none

Allocator: by default (`--malloc system`) glibc malloc is left as it is. `--malloc speechtok` applies what
the CLI applies at start-up and Python programs opt into (`speechtok.tune_malloc()`: mallopt, process-wide, so
the peers in the same process get it too). `--malloc tuned` restarts the process with peer_speed's GLIBC_TUNABLES
(freed memory stays in the heap), as the peers' stored figures in ../shared/peers/README.md were taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
PEERS_DIR = REPO.parent / "shared" / "peers"  # ../shared beside the clone
REEXEC_MARK = "SPEECHTOK_BENCH_REEXEC"

sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from speechtok.models import CodecConfig, build_codec  # noqa: E402
from speechtok.tokenizer import Tokenizer  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--peers", default="encodec_24k", help="comma list of peer_speed.py peers, 'all' or 'none'")
    ap.add_argument("--peers-dir", type=Path, default=PEERS_DIR, help="folder holding peer_speed.py")
    ap.add_argument("--zoo", default="", help="comma list of zoo tokenizers built at their published size with "
                                              f"random weights, behind the Tokenizer API: {', '.join(ZOO_BUILDERS)}")
    ap.add_argument("--batches", default="1,8", help="comma list of batch sizes")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio per item")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--malloc", choices=("system", "speechtok", "tuned"), default="system",
                    help="system: glibc malloc untouched; speechtok: mallopt as the CLI does; "
                         "tuned: restart with peer_speed's GLIBC_TUNABLES")
    ap.add_argument("--cli", default="", help="the speechtok console script to time (empty: the one beside this "
                                              "python, on PATH, or in the repository's .venv)")
    ap.add_argument("--cli-runs", type=int, default=5, help="timed `speechtok --help` runs (0: skip)")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    args = ap.parse_args(argv)

    ps = _import_peer_speed(args.peers_dir)
    if args.malloc == "tuned":
        _reexec_with(ps.MALLOC_TUNABLES)
    elif args.malloc == "speechtok":
        from speechtok.runtime.memory import tune_malloc

        if not tune_malloc():
            sys.exit("--malloc speechtok: tune_malloc() changed nothing (SPEECHTOK_MALLOC=system, or not glibc)")
    ps.setup_torch(threads=args.threads)  # threads, 1 inter-op thread, flush denormals, seed 0
    batches = tuple(int(b) for b in args.batches.split(",") if b)
    env = dict(ps.environment(), malloc=args.malloc, loadavg_start=os.getloadavg())
    for k in ("encodec", "descript-audio-codec", "speechtokenizer", "snac", "vocos", "transformers", "torchaudio"):
        env.pop(k, None)  # peer package versions: only those run are of interest, and peer_speed's README has them

    tok = build_codec(CodecConfig()).eval()
    model, api = _our_peers(ps, tok)
    env["speechtok_config_hash"] = tok.config_hash
    sr, seconds = tok.sample_rate, args.seconds

    flops = {"speechtok-codec": _gflops_per_audio_second(model.encode, model.decode, sr, seconds)}
    names = _peer_names(ps, args.peers)
    clock = _Clock()
    rows = ps.run([clock.wrap(model), clock.wrap(api)], batches=batches, seconds=seconds)
    for name in names:  # one at a time, as peer_speed.main does: only one model in memory
        for peer in ps.build_peers([name]):
            if name == "encodec_24k":
                flops[peer.name] = _gflops_per_audio_second(peer.encode, peer.decode, peer.sample_rate, seconds)
            rows += ps.run([clock.wrap(peer)], batches=batches, seconds=seconds)
            del peer
    for name in (n for n in args.zoo.split(",") if n):
        torch.manual_seed(0)
        zoo_tok = ZOO_BUILDERS[name]()
        rows += ps.run([clock.wrap(_zoo_peer(ps, zoo_tok, name))], batches=batches, seconds=seconds)
        del zoo_tok
    clock.annotate(rows)
    cli = _cli_startup(args.cli, args.cli_runs)
    env["loadavg_end"] = os.getloadavg()

    print()
    print(_machine_line(env, args.threads))
    print(f"speechtok-codec = build_codec(CodecConfig()), config {tok.config_hash}: {model.params_m:.2f} M params, "
          f"hop {tok.hop_length}, {tok.num_codebooks} x {tok.codebook_size} codes")
    print(f"{seconds:g} s of noise per item; peer_speed's policy: 1 warm-up, median of up to 5 timed runs "
          "(n=k: fewer, once 20 s are spent per cell and direction); xRT = batch x audio s / wall s. "
          "Random weights.")
    if names:
        print("Peers' stored figures in ../shared/peers/README.md were taken with tuned malloc.")
    print()
    print(ps.format_table(rows, batches))
    print()
    print(_overhead_table(rows, model.name, api.name, batches))
    print()
    print(_flops_table(flops, rows))
    print()
    print(_cpu_table(rows, batches, args.threads))
    starved = [f"{r['name']} b={r['batch']} {d}" for r in rows for d in ("encode", "decode")
               if (r.get(f"{d}_cpu_per_wall") or args.threads) < 0.75 * args.threads]
    if starved:
        print(f"WARNING: under {0.75 * args.threads:g} CPU s per wall s, so other jobs shared the cores and these "
              f"figures are too low (OpenMP threads wait for each other): {', '.join(starved)}")
    print()
    print(cli["line"])
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "args": vars(args), "rows": rows, "gflops": flops,
                                         "cli": cli}, indent=1, default=str))


# -- our rows ----------------------------------------------------------------------------------------


def _our_peers(ps, tok: Tokenizer):
    """Two rows for the same model: its pure forward, and the `Tokenizer` API around it."""

    def model_encode(wav):  # [B, 1, T] -> codes [B, Q, T_frames]
        return tok.quantizer.encode(tok.encoder(wav))

    def model_decode(codes):  # [B, Q, T_frames] -> [B, 1, T]
        return tok.decoder(tok.quantizer.decode(codes))

    meta = dict(frame_rate=tok.frame_rate, n_codebooks=tok.num_codebooks, codebook_size=tok.codebook_size,
                params_m=ps.count_params(tok))
    model = ps.Peer(name="speechtok-codec (model)", sample_rate=tok.sample_rate, encode=model_encode,
                    decode=model_decode, **meta)
    api = ps.Peer(name="speechtok-codec (Tokenizer)", sample_rate=tok.sample_rate,
                  encode=lambda wav: tok.encode(wav, tok.sample_rate), decode=tok.decode, **meta)
    return model, api


def _s3tokenizer_v2() -> Tokenizer:
    """CosyVoice 2's S3Tokenizer at its published size (1280 wide, 6 layers, 20 heads), random weights."""
    import s3tokenizer
    from s3tokenizer.model_v2 import ModelConfig

    from speechtok.adapters.s3tokenizer import tokenizer

    model = s3tokenizer.S3TokenizerV2("speech_tokenizer_v2_25hz", ModelConfig())
    return tokenizer(model.eval(), "speech_tokenizer_v2_25hz", {"path": "random weights", "sha256": "-"})


def _s3tokenizer_v3() -> Tokenizer:
    """Fun-CosyVoice 3's S3Tokenizer at its published size (1280 wide, 12 layers, 20 heads), random weights."""
    import s3tokenizer
    from s3tokenizer.model_v3 import ModelConfigV3

    from speechtok.adapters.s3tokenizer import tokenizer

    model = s3tokenizer.S3TokenizerV3("speech_tokenizer_v3_25hz", ModelConfigV3())
    return tokenizer(model.eval(), "speech_tokenizer_v3_25hz", {"path": "random weights", "sha256": "-"})


def _xcodec2_family(family: str) -> Tokenizer:
    """X-Codec2 / NeuCodec at their published size (transformers' default configs: w2v-BERT 2.0's first 16 layers,
    1024 wide, a 12-layer decoder), random weights."""
    import transformers

    from speechtok.adapters.xcodec2 import tokenizer

    cls = transformers.NeuCodecModel if family == "neucodec" else transformers.Xcodec2Model
    config = (transformers.NeuCodecConfig if family == "neucodec" else transformers.Xcodec2Config)()
    return tokenizer(cls(config).eval(), {"path": "random weights", "sha256": "-"})


def _bigcodec() -> Tokenizer:
    """BigCodec at its published size (the package's module defaults, as the publisher's inference.py builds them:
    159M parameters), random weights."""
    import bigcodec

    from speechtok.adapters import bigcodec as adapter

    model = nn.ModuleDict({"encoder": bigcodec.CodecEncoder(), "decoder": bigcodec.CodecDecoder()}).eval()
    arch = {"up_ratios": [2, 2, 2, 5, 5], "vq_num_quantizers": 1, "codebook_size": 8192, "out_channels": 1024}
    return adapter.tokenizer(model, arch, {"path": "random weights", "sha256": "-"})


def _qwen_tts_12hz() -> Tokenizer:
    """Qwen3-TTS's 12 Hz tokenizer at its published size (Mimi's default encoder, 16 of 32 codebooks; the decoder's
    defaults in the qwen-tts package: 8 layers 1024 wide, decoder_dim 1536), random weights. The decoder's codebook
    width is not among the package's defaults: 512 here (Mimi's), which only sizes the 1x1 code projections."""
    import transformers

    from speechtok.adapters import qwen_tts

    decoder = {"codebook_size": 2048, "codebook_dim": 512, "latent_dim": 1024, "hidden_size": 1024,
               "intermediate_size": 3072, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 16,
               "sliding_window": 72, "num_quantizers": 16, "upsample_rates": [8, 5, 4, 3], "upsampling_ratios": [2, 2],
               "decoder_dim": 1536}
    config = {"encoder_config": {}, "decoder_config": decoder, "encoder_valid_num_quantizers": 16}
    model = qwen_tts.Qwen3TTSTokenizer12Hz(config, transformers).eval()
    return qwen_tts.tokenizer(model, config, {}, None, {"path": "random weights", "sha256": "-"})


def _dualcodec_12hz() -> Tokenizer:
    """DualCodec's 12.5 Hz release at its published size (its yaml: DAC 32 wide, rates 4-5-6-8-2, 7 x 4096 acoustic
    codebooks; 4 ConvNeXt blocks 768 wide; w2v-BERT 2.0's first 17 layers), random weights."""
    import transformers

    from speechtok.adapters import dualcodec

    arch = {"sample_rate": 24000, "encoder_dim": 32, "encoder_rates": [4, 5, 6, 8, 2], "latent_dim": 1024,
            "decoder_dim": 1536, "decoder_rates": [2, 8, 6, 5, 4], "n_codebooks": 7, "codebook_size": 4096,
            "codebook_dim": 8, "semantic_width": 1024, "convnext_dim": 768, "convnext_hidden": 2048,
            "convnext_layers": 4, "semantic_codebook_size": 16384, "semantic_codebook_dim": 8}
    model = dualcodec.DualCodecModel(arch).eval()
    w2v = transformers.Wav2Vec2BertModel(transformers.Wav2Vec2BertConfig(num_hidden_layers=dualcodec.SEMANTIC_LAYER))
    model.load_semantic(w2v.eval(), {"mean": torch.zeros(1024), "var": torch.ones(1024)}, Path("random"))
    return dualcodec.tokenizer(model, model.num_codebooks, {"path": "random weights", "sha256": "-"})


def _stable_codec() -> Tokenizer:
    """Stable Codec at the paper's size (~950 M parameters, 320-sample patches, a 6-d latent at 25 Hz), random
    weights. Its config is published only behind the gated repository: the layout here is assumed (two TAAE blocks
    1024 wide at 50 and 25 Hz, 14 transformer layers each, the TAAE's default window of 63 + 64 frames), sized to
    the published parameter count."""
    from speechtok.adapters import stable_codec

    arch = {"sample_rate": 16000, "patch_size": 320, "in_channels": 320, "out_channels": 320, "channels": 1024,
            "c_mults": [1, 1], "strides": [1, 2], "transformer_depths": [14, 14], "latent_dim": 6,
            "use_snake": False, "layer_scale": True, "use_dilated_conv": False, "sliding_window": [63, 64],
            "soft_clip": False, "fsq_levels": [17] * 6}
    model = stable_codec.StableCodecModel(arch, list(stable_codec.PRESETS[stable_codec.DEFAULT_PRESET])).eval()
    return stable_codec.tokenizer(model, len(model.stages), {"path": "random weights", "sha256": "-"})


ZOO_BUILDERS = {"s3tokenizer-v2": _s3tokenizer_v2, "s3tokenizer-v3": _s3tokenizer_v3,
                "xcodec2": lambda: _xcodec2_family("xcodec2"), "neucodec": lambda: _xcodec2_family("neucodec"),
                "bigcodec": _bigcodec, "qwen-tts-12hz": _qwen_tts_12hz, "dualcodec-12hz": _dualcodec_12hz,
                "stable-codec": _stable_codec}


def _zoo_peer(ps, tok: Tokenizer, name: str):
    """A zoo tokenizer's row: `Tokenizer.encode` / `decode` (none for encode-only tokenizers)."""
    return ps.Peer(name=f"{name} (Tokenizer)", sample_rate=tok.sample_rate,
                   encode=lambda wav: tok.encode(wav, tok.sample_rate),
                   decode=tok.decode if tok.decoder is not None else None, frame_rate=tok.frame_rate,
                   n_codebooks=tok.num_codebooks, codebook_size=tok.codebook_size, params_m=ps.count_params(tok),
                   bitrate_kbps=tok.bitrate / 1000)  # codebooks of different sizes (DualCodec) and rates (SNAC)


def _overhead_table(rows: list[dict], model: str, api: str, batches: tuple[int, ...]) -> str:
    """API time over model-forward time, per direction and batch: what the `Tokenizer` adds. The fastest runs
    are compared too: on a shared machine they are less noisy than the medians."""
    by = {(r["name"], r["batch"]): r for r in rows if not r.get("skipped")}
    lines = ["| Tokenizer API overhead over the model forward: median (fastest) | " + " | ".join(
        f"enc b={b} | dec b={b}" for b in batches) + " |", "|---" * (1 + 2 * len(batches)) + "|"]
    cells = []
    for b in batches:
        m, a = by.get((model, b)), by.get((api, b))
        for d in ("encode", "decode"):
            if m is None or a is None:
                cells.append("-")
                continue
            median = 100 * (a[f"{d}_s"] / m[f"{d}_s"] - 1)
            fastest = 100 * (min(a[f"{d}_times"]) / min(m[f"{d}_times"]) - 1)
            cells.append(f"{median:+.1f}% ({fastest:+.1f}%)")
    lines.append("| speechtok-codec | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- contention ----------------------------------------------------------------------------------------


class _Clock:
    """Process CPU seconds (user, system) and wall seconds of every encode and decode call (warm-ups included),
    per model, batch and direction. CPU / wall near the thread count means the cores were ours; well below it,
    other jobs took them (or the model leaves threads idle), and the wall times of that cell are suspect. A high
    system share is the allocator's page faults (see --malloc)."""

    def __init__(self):
        self.cells: dict[tuple[str, int, str], list[float]] = {}  # (name, batch, direction) -> [user, sys, wall]

    def wrap(self, peer):
        batch = [0]  # the batch of the last encode: decode gets its codes

        def encode(wav, _fn=peer.encode):
            batch[0] = wav.shape[0]
            return self._call((peer.name, batch[0], "encode"), _fn, wav)

        def decode(codes, _fn=peer.decode):
            return self._call((peer.name, batch[0], "decode"), _fn, codes)

        return dataclasses.replace(peer, encode=encode, decode=decode if peer.decode else None)

    def _call(self, key, fn, arg):
        c0, t0 = os.times(), time.perf_counter()
        out = fn(arg)
        c1 = os.times()
        cell = self.cells.setdefault(key, [0.0, 0.0, 0.0])
        cell[0] += c1.user - c0.user
        cell[1] += c1.system - c0.system  # page faults of fresh mmaps show here
        cell[2] += time.perf_counter() - t0
        return out

    def annotate(self, rows: list[dict]) -> None:
        for r in rows:
            for direction in ("encode", "decode"):
                user, system, wall = self.cells.get((r["name"], r["batch"], direction), (0.0, 0.0, 0.0))
                r[f"{direction}_cpu_per_wall"] = (user + system) / wall if wall else None
                r[f"{direction}_sys_share"] = system / (user + system) if user + system else None


def _cpu_table(rows: list[dict], batches: tuple[int, ...], threads: int) -> str:
    head = f"| CPU s / wall s (at most {threads}), system share | " + " | ".join(
        f"enc b={b} | dec b={b}" for b in batches) + " |"
    lines = [head, "|---" * (1 + 2 * len(batches)) + "|"]
    by = {(r["name"], r["batch"]): r for r in rows}
    for name in dict.fromkeys(r["name"] for r in rows):
        cells = []
        for b in batches:
            r = by.get((name, b), {})
            for d in ("encode", "decode"):
                util, share = r.get(f"{d}_cpu_per_wall"), r.get(f"{d}_sys_share")
                cells.append("-" if util is None else f"{util:.2f}, sys {100 * share:.0f}%")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- FLOPs -------------------------------------------------------------------------------------------


def _gflops_per_audio_second(encode: Callable, decode: Callable, sample_rate: int, seconds: float) -> dict:
    """GFLOPs per second of audio of one encode and one decode of a `seconds` clip at batch 1."""
    wav = 0.1 * torch.randn(1, 1, int(round(sample_rate * seconds)), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        enc, codes = _count_flops(encode, wav)
        dec, _ = _count_flops(decode, codes)
    return {"encode": enc / seconds / 1e9, "decode": dec / seconds / 1e9}


def _count_flops(fn: Callable, arg: Any) -> tuple[int, Any]:
    """FLOPs of `fn(arg)`: FlopCounterMode's (matmuls, convs), plus those of each nn.LSTM call it counted
    nothing for (the fused CPU kernel of an unpacked LSTM; a packed one runs ops it does count)."""
    counter = FlopCounterMode(display=False)
    lstm_flops, started = [], []

    def before(module, inputs):
        if isinstance(module, torch.nn.LSTM):
            started.append(counter.get_total_flops())

    def after(module, inputs, output):
        if isinstance(module, torch.nn.LSTM) and counter.get_total_flops() == started.pop():
            x = inputs[0]  # [B, T, I] (batch_first), [T, B, I] or a PackedSequence of [steps, I]
            steps = x.data.shape[0] if isinstance(x, torch.nn.utils.rnn.PackedSequence) else x.shape[0] * x.shape[1]
            h, i, dirs = module.hidden_size, module.input_size, 2 if module.bidirectional else 1
            per_step = sum(2 * 4 * h * ((i if layer == 0 else h * dirs) + h) for layer in range(module.num_layers))
            lstm_flops.append(steps * per_step * dirs)

    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(before),
             torch.nn.modules.module.register_module_forward_hook(after)]
    try:
        with counter:
            out = fn(arg)
    finally:
        for hook in hooks:
            hook.remove()
    return counter.get_total_flops() + sum(lstm_flops), out


def _flops_table(flops: dict[str, dict], rows: list[dict]) -> str:
    """GFLOPs per audio second, and the GFLOP/s the model forward achieves at each measured batch."""
    lines = ["| model | GFLOPs / audio s, encode | GFLOPs / audio s, decode | achieved GFLOP/s enc, dec |",
             "|---|---|---|---|"]
    for name, f in flops.items():
        row_name = "speechtok-codec (model)" if name == "speechtok-codec" else name
        achieved = [f"b={r['batch']}: {f['encode'] * r['encode_xrt']:.1f}, {f['decode'] * r['decode_xrt']:.1f}"
                    for r in rows if r["name"] == row_name and not r.get("skipped") and r.get("decode_xrt")]
        lines.append(f"| {name} | {f['encode']:.2f} | {f['decode']:.2f} | {'; '.join(achieved) or '-'} |")
    lines.append("(FlopCounterMode: convolutions and matmuls, 2 FLOPs per multiply-add; LSTMs added by hand; "
                 "FFTs, norms and activations not counted)")
    return "\n".join(lines)


# -- CLI start-up ------------------------------------------------------------------------------------


def _cli_startup(cli: str | None, runs: int) -> dict:
    """Median wall time of `speechtok --help` in a fresh process (after one untimed run), beside the time of
    `python -c "import torch"` with the same interpreter. A missing console script is reported, not raised."""
    if runs <= 0:
        return {"line": "CLI start-up: not measured (--cli-runs 0)"}
    exe = cli or _find_cli()
    if exe is None:
        return {"line": "CLI start-up: no `speechtok` console script found (pip install -e . makes one)"}
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", REEXEC_MARK, "PEER_SPEED_REEXEC")}
    cli_s, err = _time_command([exe, "--help"], runs, env)
    if cli_s is None:
        return {"line": f"CLI start-up: `{exe} --help` failed: {err}", "exe": exe}
    python = _shebang_python(exe)
    torch_s = _time_command([python, "-c", "import torch"], runs, env)[0] if python else None
    line = (f"CLI start-up: `speechtok --help` {statistics.median(cli_s):.2f} s (median of {runs}, "
            f"min {min(cli_s):.2f} s; {exe})")
    if torch_s:
        line += f"; `python -c 'import torch'` alone: {statistics.median(torch_s):.2f} s"
    return {"line": line, "exe": exe, "help_s": cli_s, "import_torch_s": torch_s}


def _find_cli() -> str | None:
    for candidate in (Path(sys.executable).parent / "speechtok", shutil.which("speechtok"),
                      REPO / ".venv" / "bin" / "speechtok"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _shebang_python(script: str) -> str | None:
    try:
        first = Path(script).read_bytes()[:200].split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return None
    return first[2:].strip().split()[0] if first.startswith("#!") and "python" in first else None


def _time_command(cmd: list[str], runs: int, env: dict) -> tuple[list[float] | None, str]:
    times = []
    for i in range(runs + 1):  # the first run warms the page cache and is not timed
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        except OSError as e:  # not found, not executable
            return None, str(e)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"exit {proc.returncode}: {tail}"
        if i:
            times.append(elapsed)
    return times, ""


# -- set-up ------------------------------------------------------------------------------------------


def _import_peer_speed(peers_dir: Path):
    """peer_speed.py needs only torch at import; it imports each peer's package when that peer is built."""
    if not (peers_dir / "peer_speed.py").is_file():
        sys.exit(f"{peers_dir / 'peer_speed.py'} not found: pass --peers-dir (../shared/peers beside the clone)")
    sys.path.insert(0, str(peers_dir))
    import peer_speed

    return peer_speed


def _reexec_with(tunables: str) -> None:
    """Restart this command with glibc malloc tuned: the tunables are read only at process start."""
    if os.environ.get(REEXEC_MARK) or tunables in os.environ.get("GLIBC_TUNABLES", ""):
        return
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    env["GLIBC_TUNABLES"] = ":".join(x for x in (env.get("GLIBC_TUNABLES"), tunables) if x)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _peer_names(ps, spec: str) -> list[str]:
    if spec == "none":
        return []
    names = list(ps.BUILDERS) if spec == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in ps.BUILDERS]
    if unknown:
        sys.exit(f"unknown peers {unknown}; known: {list(ps.BUILDERS)}")
    return names


def _machine_line(env: dict, threads: int) -> str:
    load = "/".join(f"{x:.1f}" for x in env["loadavg_start"])
    load_end = "/".join(f"{x:.1f}" for x in env["loadavg_end"])
    return (f"Machine: {env.get('cpu', platform.processor() or 'unknown CPU')}, {env['cpu_count']} cores, "
            f"{threads} torch threads, torch {env['torch']}, Python {env['python']}, "
            f"malloc {env['malloc']} (GLIBC_TUNABLES: {env['malloc_tuned']}), load average {load} at start, "
            f"{load_end} at end, {env['date']}")


if __name__ == "__main__":
    main()
