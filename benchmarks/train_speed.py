#!/usr/bin/env python3
"""Training speed of the recipes: seconds of audio trained per wall second (a benchmark, not a test).

For each configuration (a bundled recipe plus overrides, see CONFIGS and `--list`), in a fresh subprocess so
that peak memory is that configuration's alone, it builds the real `Trainer` (speechtok/training/trainer.py)
from `load_recipe(recipe, overrides)` and drives it as `Trainer.fit` does: batches from the real data stream
(`training.data.batches`, the recipe's manifests in ../shared/data), `_set_lr`, `Trainer.train_step`, step + 1.
No validation, logging or checkpoints. After `--warmup` untimed steps (the RVQ's k-means init is in the first
one) it times `--steps` steps, each twice over: the full step (getting the batch and moving it to the device,
then `train_step`) and `train_step` alone. On CUDA the clock is read after `torch.cuda.synchronize()`.

Per configuration it prints

- steps/s and audio-s/s (batch x segment seconds x steps / wall seconds), of the full step and of `train_step`
  alone, and the mean step time in ms with and without the batch;
- peak memory: the process's ru_maxrss on CPU (torch, the model, the optimizers and the audio cache read so
  far), `torch.cuda.max_memory_allocated()` on CUDA (host RSS beside it in the JSON);
- model GFLOP per audio second: the FLOPs of one whole training step (forward and backward of every group,
  the optimizers' matmul-free updates adding nothing), counted with `torch.utils.flop_counter.FlopCounterMode`
  on one extra step, divided by the step's audio seconds. FlopCounterMode counts matmuls, convolutions and
  attention kernels (2 FLOPs per multiply-add); nn.LSTM calls it misses are added by hand (backward taken as
  twice the forward). FFT/STFT/ISTFT, elementwise ops, norms, activations and the CPU attention kernel
  (`_scaled_dot_product_flash_attention_for_cpu`, small at 50 frames/s) are not counted, so the figure is a
  lower bound of the work;
- achieved GFLOP/s = GFLOP per audio-s x audio-s/s (full step), and, with a peak (`--peak-tflops`; on CUDA
  inferred from the device name for bf16/fp16), the share of it: a utilisation;
- process CPU seconds per wall second during the timed steps: well below `--threads` means other jobs had
  the cores (OpenMP threads then wait for each other) and the CPU figures are too low.

`--breakdown` (GAN tasks: codec-*, speechtokenizer) times, on further steps, where a step goes: the generator's
forward by part (encoder, quantizer, decoder, ...), each discriminator call (real, fake detached, real without
grad as feature targets, fake for the generator's loss), the multi-scale mel loss forward, and each optimizer
group's update split into backward, clipping + EMA, and the AdamW step. The generator's backward is split
further at the gradients that reach the mel loss's input, the discriminator's input (fake) and the decoder's
output (autograd runs later ops first, so these mark the mel loss backward, the discriminator's backward on
the fake and then the generator's own backward). It works with hooks on the real `train_step` (module forward
hooks, tensor gradient hooks, wrapped `Trainer._update` and `Precision.backward` / `.step`), so the code timed
is the code that trains; on CUDA each mark synchronizes, which slows the step a little.

    .venv/bin/python benchmarks/train_speed.py                                   # all, CPU, 2 threads
    .venv/bin/python benchmarks/train_speed.py --configs codec-gan-narrow --threads 1 --breakdown
    .venv/bin/python benchmarks/train_speed.py --device cuda --batch-size 64 --steps 30 --json gpu.json
    .venv/bin/python benchmarks/train_speed.py --configs codec-gan -o train.grad_accum=2   # any recipe override

The first epoch reads and decodes each crop's whole file on first use (the data cache fills as it goes, as in
`fit`'s first epoch, ~570 steps at batch 8); `--warm-cache` reads the files of the steps to be drawn before
timing, for the steady state of later epochs. Run from anywhere: the subprocesses run in the repository root,
where the recipes' relative paths (../shared/data, speechtok/pretrained) resolve.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HUBERT_UNITS = "speechtok/pretrained/speechtok-hubert-units"  # bundled; relative to the repository root

# name -> (recipe, overrides, what it is)
CONFIGS: dict[str, tuple[str, list[str], str]] = {
    "codec-mel": ("codec", ["task_config.adversarial_start=1000000"],
                  "codec, reconstruction only (mel + commitment)"),
    "codec-gan": ("codec", ["task_config.adversarial_start=0"], "codec with the recipe's discriminators"),
    "codec-gan-narrow": ("codec", ["task_config.adversarial_start=0",
                                   "task_config.discriminator.period_channels=[16,32,64,128,128]",
                                   "task_config.discriminator.stft_channels=16"],
                         "codec with narrow discriminators (the CPU GAN runs')"),
    "speechtokenizer": ("speechtokenizer", [f"task_config.teacher={HUBERT_UNITS}"],
                        "hybrid, GAN from step 0, teacher: the bundled hubert-units' HuBERT"),
    "hubert": ("hubert", [f"task_config.targets={{kind: units, model: {HUBERT_UNITS}}}"],
               "HuBERT masked prediction of the bundled hubert-units' units"),
    "flow": ("flow", [], "flow-matching decoder on the frozen bundled speechtok-codec-16k"),
}

# dense tensor-core TFLOP/s (bf16 / fp16) from the vendors' datasheets, matched against the device name
CUDA_PEAKS_BF16 = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                   ("A10G", 70.0), ("L4", 121.0), ("4090", 165.0), ("3090", 71.0)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--configs", default="all", help=f"comma list of {', '.join(CONFIGS)}, or 'all'")
    ap.add_argument("--list", action="store_true", help="print the configurations and their overrides, then exit")
    ap.add_argument("--batch-size", type=int, default=8, help="items per step (0: the recipe's)")
    ap.add_argument("--segment-seconds", type=float, default=0.0, help="crop length (0: the recipe's)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (OMP_NUM_THREADS too)")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    ap.add_argument("--precision", default="", help="train.precision: auto, fp32, bf16, fp16 (empty: the recipe's)")
    ap.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra recipe override for every configuration (repeatable)")
    ap.add_argument("--breakdown", action="store_true", help="also time the parts of GAN steps (see above)")
    ap.add_argument("--breakdown-steps", type=int, default=0, help="steps the breakdown averages (0: --steps)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="read the audio of the steps to be drawn before timing (later epochs' steady state)")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting step")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="the device's nominal peak, for the utilisation column (0: inferred on CUDA, else none)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one configuration in this process
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.list:
        for name, (recipe, overrides, what) in CONFIGS.items():
            print(f"{name:18s} {recipe}.yaml {' '.join(overrides) or '(as is)'}   # {what}")
        return
    if args.worker:
        result = _worker(args.worker, args)
        args.worker_out.write_text(json.dumps(result, default=str))
        return

    names = list(CONFIGS) if args.configs == "all" else [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    env = _environment()
    results = []
    for name in names:
        print(f"{name}: running ({CONFIGS[name][0]}.yaml, {CONFIGS[name][2]}) ...", file=sys.stderr, flush=True)
        result = _run_subprocess(name, args)
        if "error" in result:
            print(f"{name}: not measured: {result['error']}", flush=True)
        results.append(result)
    env["loadavg_end"] = os.getloadavg()
    ok = [r for r in results if "error" not in r]
    if ok:
        env.update({k: ok[0][k] for k in ("device_name", "torch", "cuda") if ok[0].get(k)})
    peak = _peak(args, ok)

    print()
    print(_machine_line(env, args))
    print(f"{args.warmup} warm-up steps (untimed), then {args.steps} timed steps per configuration; each in its own "
          "process; audio-s/s = batch x segment seconds / mean step seconds.")
    print()
    print(_table(ok, peak))
    print("(step ms: full step, getting the batch included / train_step alone. Peak MB: ru_maxrss on CPU, "
          "torch.cuda.max_memory_allocated on CUDA. GFLOP/audio-s: FlopCounterMode's matmuls, convolutions and "
          "attention, nn.LSTM added by hand; FFT/STFT and elementwise ops not counted.)")
    for r in ok:
        if r.get("overrides_extra"):
            print(f"{r['config']}: with {' '.join(r['overrides_extra'])}")
    starved = [f"{r['config']} ({r['cpu_per_wall']:.2f})" for r in ok
               if r["device"] == "cpu" and r["cpu_per_wall"] < 0.75 * r["threads"]]
    if starved:
        print(f"WARNING: under {0.75 * args.threads:g} process CPU s per wall s, so other jobs shared the cores and "
              f"these CPU figures are too low: {', '.join(starved)}")
    for r in ok:
        if r.get("breakdown"):
            print()
            print(_breakdown_table(r))
        if r.get("flops_by_module"):
            print(_flops_line(r))
    failed = [r for r in results if "error" in r]
    if failed:
        print()
        for r in failed:
            print(f"not measured: {r['config']}: {r['error']}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "args": {k: v for k, v in vars(args).items()
                                                                     if not k.startswith("worker")},
                                         "peak_tflops": peak, "results": results}, indent=1, default=str))


# -- the parent: one subprocess per configuration ---------------------------------------------------------------


def _run_subprocess(name: str, args) -> dict:
    forward = ["--batch-size", str(args.batch_size), "--segment-seconds", str(args.segment_seconds),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--device", args.device, "--precision", args.precision,
               "--breakdown-steps", str(args.breakdown_steps)]
    forward += [f"--override={o}" for o in args.override]
    forward += [flag for flag, on in (("--breakdown", args.breakdown), ("--warm-cache", args.warm_cache),
                                      ("--no-flops", args.no_flops)) if on]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--worker-out", str(out), *forward]
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"config": name, "error": f"timed out after {args.timeout:g} s"}
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()] or ["no output"]
            return {"config": name, "error": f"exit {proc.returncode}: {lines[-1].strip()}"}
        return json.loads(out.read_text())


# -- the worker: one configuration, in its own process ----------------------------------------------------------


def _worker(name: str, args) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    recipe_name, overrides, what = CONFIGS[name]
    base = {"config": name, "recipe": recipe_name, "what": what}
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return {**base, "error": f"no CUDA device (torch {torch.__version__})"}
    ours = [f"train.device={device}", f"train.threads={args.threads}"]
    if args.batch_size:
        ours.append(f"train.batch_size={args.batch_size}")
    if args.segment_seconds:
        ours.append(f"data.segment_seconds={args.segment_seconds:g}")
    if args.precision:
        ours.append(f"train.precision={args.precision}")
    overrides = [*overrides, *ours, *args.override]
    try:
        from speechtok.training.recipe import load_recipe
        from speechtok.training.trainer import Trainer

        recipe = load_recipe(recipe_name, overrides)
        with tempfile.TemporaryDirectory(prefix="train-speed-run-") as run_dir:  # fit is not called: stays empty
            trainer = Trainer(recipe, run_dir)
        stream, dataset = _stream(trainer, args)
    except Exception as e:  # a configuration this machine cannot build: one line, the others go on
        return {**base, "error": f"cannot build: {type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    return {**base, **_measure(trainer, stream, dataset, args, device), "overrides": overrides,
            "overrides_extra": list(args.override)}


def _stream(trainer, args):
    """The data stream `fit` builds, over a dataset we keep a handle on (for --warm-cache)."""
    from speechtok.training.data import CropDataset, EpochBatches, batches, make_dataset

    cfg = trainer.cfg
    dataset = make_dataset(trainer.recipe.data, cfg.seed)
    if args.warm_cache and isinstance(dataset, CropDataset):
        needed = args.warmup + args.steps + 1 + (args.breakdown_steps or args.steps) * args.breakdown
        for k, keys in enumerate(EpochBatches(len(dataset), cfg.batch_size, cfg.seed)):
            if k >= needed:
                break
            for epoch, index in keys:
                dataset.crop_pcm16(index, epoch)
    stream = batches(trainer.recipe.data, cfg.batch_size, cfg.seed, start_step=trainer.step,
                     rank=trainer.dist.rank, world_size=trainer.dist.world_size, dataset=dataset)
    return stream, dataset


def _measure(trainer, stream, dataset, args, device: str) -> dict:
    import torch

    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sr = trainer.recipe.data.sample_rate
    trainer.task.train()
    rss_built = _rss_mb()

    def step() -> tuple[float, float, float]:
        """(full step s, train_step s, audio s) of one step, as `fit` runs it."""
        t0 = time.perf_counter()
        batch = next(stream).to(trainer.device, non_blocking=True)
        sync()
        t1 = time.perf_counter()
        trainer._set_lr()
        trainer.train_step(batch)
        trainer.step += 1
        sync()
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1, batch.shape[0] * batch.shape[-1] / sr

    for _ in range(args.warmup):
        step()
    c0 = os.times()
    timed = [step() for _ in range(args.steps)]
    c1 = os.times()
    full, alone, audio = (sum(x) for x in zip(*timed))
    steps = len(timed)
    out = {
        "device": device, "threads": args.threads, "precision": trainer.precision.name,
        "batch_size": trainer.cfg.batch_size, "segment_seconds": trainer.recipe.data.segment_seconds,
        "audio_s_per_step": audio / steps, "steps_timed": steps, "warmup": args.warmup,
        "step_s": [t[0] for t in timed], "train_step_s": [t[1] for t in timed],
        "step_ms": 1000 * full / steps, "train_step_ms": 1000 * alone / steps,
        "step_ms_median": 1000 * statistics.median(t[0] for t in timed),
        "steps_per_s": steps / full, "audio_s_per_s": audio / full, "audio_s_per_s_train_step": audio / alone,
        "cpu_per_wall": (c1.user - c0.user + c1.system - c0.system) / full,
        "params_m": {group: sum(p.numel() for p in m.parameters()) / 1e6
                     for group, m in trainer.task.modules().items()},
        "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
        "device_name": torch.cuda.get_device_name() if cuda else _cpu_model(),
        "rss_after_build_mb": rss_built,
    }
    if not args.no_flops:
        flops, by_module, flop_audio = _count_step_flops(trainer, stream, sr)
        out["gflop_per_step"] = flops / 1e9
        out["gflop_per_audio_s"] = flops / flop_audio / 1e9
        out["flops_by_module_gflop"] = by_module
        out["flops_by_module"] = bool(by_module)
    if args.breakdown:
        from speechtok.training.tasks.gan import GANTask

        if isinstance(trainer.task, GANTask):
            out["breakdown"] = _breakdown(trainer, step, args.breakdown_steps or args.steps, sync)
        else:
            out["breakdown_skipped"] = f"{type(trainer.task).__name__} is not a GAN task"
    if cuda:
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        out["host_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return out


def _rss_mb() -> float:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


# -- FLOPs ------------------------------------------------------------------------------------------------------


def _count_step_flops(trainer, stream, sample_rate: int) -> tuple[int, dict[str, float], float]:
    """FLOPs of one more full training step (forward + backward of every group, optimizer steps), per top-level
    module too. nn.LSTM calls that FlopCounterMode counted nothing for (the fused CPU kernel) are added by hand:
    their forward, and twice that for their backward when grad is on."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    lstm_flops, started = [], []

    def before(module, inputs):
        if isinstance(module, torch.nn.LSTM):
            started.append(counter.get_total_flops())

    def after(module, inputs, output):
        if isinstance(module, torch.nn.LSTM) and counter.get_total_flops() == started.pop():
            x = inputs[0]
            steps = x.data.shape[0] if isinstance(x, torch.nn.utils.rnn.PackedSequence) else x.shape[0] * x.shape[1]
            h, i, dirs = module.hidden_size, module.input_size, 2 if module.bidirectional else 1
            per_step = sum(2 * 4 * h * ((i if layer == 0 else h * dirs) + h) for layer in range(module.num_layers))
            grad = torch.is_grad_enabled() and (any(p.requires_grad for p in module.parameters())
                                                or getattr(x, "requires_grad", False))
            lstm_flops.append(steps * per_step * dirs * (3 if grad else 1))

    batch = next(stream).to(trainer.device)
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(before),
             torch.nn.modules.module.register_module_forward_hook(after)]
    try:
        with counter:
            trainer._set_lr()
            trainer.train_step(batch)
            trainer.step += 1
    finally:
        for hook in hooks:
            hook.remove()
    by_module = {name: sum(ops.values()) / 1e9 for name, ops in counter.get_flop_counts().items()
                 if name != "Global" and "." not in name}
    if lstm_flops:
        by_module["nn.LSTM (by hand)"] = sum(lstm_flops) / 1e9
    audio = batch.shape[0] * batch.shape[-1] / sample_rate
    return counter.get_total_flops() + sum(lstm_flops), by_module, audio


def _peak(args, ok: list[dict]) -> dict | None:
    if args.peak_tflops:
        return {"tflops": args.peak_tflops, "source": "--peak-tflops"}
    for r in ok:
        if r["device"] == "cuda" and r["precision"] in ("bf16", "fp16"):
            for key, tflops in CUDA_PEAKS_BF16:
                if key.lower() in r["device_name"].lower():
                    return {"tflops": tflops, "source": f"dense {r['precision']} datasheet figure for '{key}' "
                                                        f"(from the device name {r['device_name']!r})"}
    return None


# -- breakdown of a GAN step ------------------------------------------------------------------------------------

D_CALLS = ["D fwd real", "D fwd fake (detached)", "D fwd real (no grad: feature targets)", "D fwd fake (for G loss)"]


class _Marks:
    """Times of the parts of one training step: forward hooks, gradient hooks and wrapped update functions."""

    def __init__(self, sync):
        self.sync = sync
        self.parts: dict[str, float] = defaultdict(float)  # label -> seconds this step
        self.grad_marks: dict[str, float] = {}  # label -> clock when that gradient was reached
        self.d_calls = 0
        self._open: list[float] = []

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def reset(self) -> None:
        self.parts.clear()
        self.grad_marks.clear()
        self.d_calls = 0

    def mark_grad(self, tensor, label: str):
        """A view of `tensor` whose gradient hook stamps the clock: the view's gradient is this consumer's
        alone (a hook on `tensor` itself would wait for all of its consumers)."""
        if not tensor.requires_grad:
            return tensor
        view = tensor.view_as(tensor)

        def hook(grad):
            self.grad_marks[label] = self.now()
        view.register_hook(hook)
        return view

    def timed_module(self, module, label_fn, mark_input=None, mark_output=None) -> list:
        def pre(mod, inputs):
            self._open.append(self.now())
            if mark_input is not None:
                label = mark_input()
                if label and inputs and hasattr(inputs[0], "requires_grad"):
                    return (self.mark_grad(inputs[0], label), *inputs[1:])
            return None

        def post(mod, inputs, output):
            self.parts[label_fn()] += self.now() - self._open.pop()
            if mark_output is not None and hasattr(output, "register_hook") and output.requires_grad:
                label = mark_output

                def hook(grad):
                    self.grad_marks[label] = self.now()
                output.register_hook(hook)
            return None

        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def _breakdown(trainer, step_fn, steps: int, sync) -> dict:
    """Mean seconds per step of each part of `GANTask.step` under the real `Trainer.train_step`."""
    task = trainer.task
    marks = _Marks(sync)
    handles = []
    gen = task.generator
    for part in ("encoder", "quantizer", "semantic", "decoder"):
        module = getattr(gen, part, None)
        if module is not None:
            handles += marks.timed_module(module, lambda p=part: f"G fwd {p}",
                                          mark_output="grad at decoder output" if part == "decoder" else None)
    teacher = getattr(task, "teacher", None)
    if teacher is not None:
        handles += marks.timed_module(teacher, lambda: "teacher fwd (no grad)")

    def d_label():
        k = marks.d_calls
        marks.d_calls += 1
        return D_CALLS[k] if k < len(D_CALLS) else f"D fwd call {k + 1}"

    d_names: list[str] = []  # the label of the discriminator call in progress

    def d_mark_input():  # the 4th call's input is wav_hat with grad: the generator's path through D
        d_names.append(d_label())
        return "grad at D(fake) input" if d_names[-1] == D_CALLS[3] else None

    handles += marks.timed_module(task.discriminator, lambda: d_names.pop(), mark_input=d_mark_input)
    handles += marks.timed_module(task.mel_loss, lambda: "mel loss fwd", mark_input=lambda: "grad at mel-loss input")

    precision, group_now = trainer.precision, [""]
    orig_update, orig_backward, orig_step = trainer._update, precision.backward, precision.step
    backward_span: dict[str, tuple[float, float]] = {}

    def update(group, loss, first=True, last=True):
        group_now[0] = group
        t = marks.now()
        orig_update(group, loss, first, last)
        marks.parts[f"{group} update (total)"] += marks.now() - t

    def backward(loss):
        t = marks.now()
        orig_backward(loss)
        t1 = marks.now()
        marks.parts[f"{group_now[0]} update: backward"] += t1 - t
        backward_span[group_now[0]] = (t, t1)

    def opt_step(optimizer):
        t = marks.now()
        orig_step(optimizer)
        marks.parts[f"{group_now[0]} update: AdamW step"] += marks.now() - t

    trainer._update, precision.backward, precision.step = update, backward, opt_step
    sums: dict[str, float] = defaultdict(float)
    totals = []
    try:
        for _ in range(steps):
            marks.reset()
            backward_span.clear()
            full, alone, _ = step_fn()
            totals.append(alone)
            parts = dict(marks.parts)
            for group in ("discriminator", "generator"):
                if f"{group} update (total)" in parts:
                    parts[f"{group} update: clip + EMA + rest"] = (
                        parts[f"{group} update (total)"] - parts.get(f"{group} update: backward", 0.0)
                        - parts.get(f"{group} update: AdamW step", 0.0))
            if "generator" in backward_span:  # split the generator's backward at the gradient marks
                start, end = backward_span["generator"]
                prev = start
                for label, t in sorted(((k, v) for k, v in marks.grad_marks.items() if start <= v <= end),
                                       key=lambda kv: kv[1]):
                    parts[f"G bwd: until {label}"] = t - prev
                    prev = t
                parts["G bwd: after the last mark (generator's own backward)"] = end - prev
            top = [k for k in parts if k.startswith(("G fwd", "teacher", "D fwd", "mel loss")) or k.endswith("(total)")]
            parts["other (reconstruct glue, loss sums, .item(), lr)"] = alone - sum(parts[k] for k in top)
            for k, v in parts.items():
                sums[k] += v
    finally:
        trainer._update, precision.backward, precision.step = orig_update, orig_backward, orig_step
        for h in handles:
            h.remove()
    mean_step = sum(totals) / len(totals)
    return {"steps": len(totals), "train_step_s": mean_step, "adversarial": trainer.step - 1 >= task.adversarial_start,
            "parts_s": {k: v / len(totals) for k, v in sums.items()}}


def _breakdown_table(r: dict) -> str:
    b = r["breakdown"]
    step_ms = 1000 * b["train_step_s"]
    head = (f"Breakdown of {r['config']} on {r['device']}, {r['threads']} threads, batch {r['batch_size']} x "
            f"{r['segment_seconds']:g} s: train_step {step_ms:.0f} ms (mean of {b['steps']} steps with the "
            f"marks; {r['train_step_ms']:.0f} ms without them)")
    order = ["G fwd encoder", "G fwd quantizer", "G fwd semantic", "teacher fwd (no grad)", "G fwd decoder",
             *D_CALLS, "discriminator update (total)", "discriminator update: backward",
             "discriminator update: clip + EMA + rest", "discriminator update: AdamW step", "mel loss fwd",
             "generator update (total)", "generator update: backward"]
    parts = b["parts_s"]
    keys = [k for k in order if k in parts]
    keys += [k for k in parts if k.startswith("G bwd")]  # in time order
    keys += [k for k in ("generator update: clip + EMA + rest", "generator update: AdamW step") if k in parts]
    keys += [k for k in parts if k not in keys]
    lines = [head, "| part | ms / step | % of step |", "|---|---|---|"]
    for k in keys:
        indent = "-- " if k.startswith("G bwd") else "- " if "update: " in k else ""
        lines.append(f"| {indent}{k} | {1000 * parts[k]:.1f} | {100 * parts[k] / b['train_step_s']:.1f}% |")
    lines.append("(rows without a dash add up to the step; D fwd rows are forwards only, the discriminator's "
                 "backward on real and fake is its update's backward row; G bwd rows split the generator's backward "
                 "at the gradient marks in time order)")
    return "\n".join(lines)


def _flops_line(r: dict) -> str:
    by = r["flops_by_module_gflop"]
    items = ", ".join(f"{k} {v / r['audio_s_per_step']:.1f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))
    return (f"{r['config']}: GFLOP per audio-s by top-level module (FlopCounterMode's module tracker; backward ops "
            f"may land under the module whose forward ran last, e.g. the discriminator's backward in the generator "
            f"step under MultiScaleMelLoss; the total is exact): {items}")


# -- output -----------------------------------------------------------------------------------------------------


def _table(rows: list[dict], peak: dict | None) -> str:
    cols = ["config", "device", "threads", "batch x s", "steps/s", "audio-s/s (train_step alone)",
            "step ms (with data / train_step)", "CPU s / wall s", "peak MB", "GFLOP / audio-s", "achieved GFLOP/s"]
    if peak:
        cols.append(f"of {peak['tflops']:g} TFLOP/s peak")
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in rows:
        gf = r.get("gflop_per_audio_s")
        achieved = gf * r["audio_s_per_s"] if gf is not None else None
        cells = [r["config"], f"{r['device']} {r['precision']}", str(r["threads"]),
                 f"{r['batch_size']} x {r['segment_seconds']:g}", f"{r['steps_per_s']:.3f}",
                 f"{r['audio_s_per_s']:.2f} ({r['audio_s_per_s_train_step']:.2f})",
                 f"{r['step_ms']:.0f} / {r['train_step_ms']:.0f}", f"{r['cpu_per_wall']:.2f}",
                 f"{r['peak_mb']:.0f}", "-" if gf is None else f"{gf:.1f}",
                 "-" if achieved is None else f"{achieved:.1f}"]
        if peak:
            cells.append("-" if achieved is None else f"{100 * achieved / (1000 * peak['tflops']):.2f}%")
        lines.append("| " + " | ".join(cells) + " |")
    if peak:
        lines.append(f"(peak: {peak['source']})")
    return "\n".join(lines)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _environment() -> dict:
    env = {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "loadavg_start": os.getloadavg()}
    with contextlib.suppress(AttributeError):
        env["cpus_usable"] = len(os.sched_getaffinity(0))
    return env


def _machine_line(env: dict, args) -> str:
    load = "/".join(f"{x:.1f}" for x in env["loadavg_start"])
    load_end = "/".join(f"{x:.1f}" for x in env["loadavg_end"])
    device = env.get("device_name") if env.get("device_name") and env.get("device_name") != env["cpu"] else None
    return (f"Machine: {env['cpu']}, {env['cpu_count']} cores ({env.get('cpus_usable', '?')} usable), "
            + (f"GPU {device} (CUDA {env.get('cuda')}), " if device else "")
            + f"{args.threads} torch threads, torch {env.get('torch', '?')}, Python {env['python']}, "
            f"load average {load} at start, {load_end} at end, {env['date']}")


if __name__ == "__main__":
    main()
