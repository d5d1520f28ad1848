#!/usr/bin/env bash
# One GPU lease, one command of at most 10 minutes: with BENCH=1 the pre-tokenization benchmark on CUDA first
# (about 2 minutes), then trainings side by side on the one GPU (the models are small, so one process each leaves
# the GPU mostly idle). JOBS chooses them, by default "hybrid hubert hubert-perturbed":
#   codec   the bundled codec's adversarial phase (init_from the bundled weights, discriminators from scratch)
#   hybrid  SpeechTokenizer from scratch, distilled towards the bundled HuBERT, adversarial from step 0
#   hubert  HuBERT iteration 2 from scratch on the bundled units (iteration 1, layer 3, K = 100)
#   hubert-perturbed  the same with speaker perturbation (3 crops in 4), so that one lease compares the two
# Each run is time-boxed (train.max_minutes) to end before the lease, then exported (EMA and last-step weights);
# the exports and logs come back under $OUT (at most 8 files: one tar per export, one for the logs).
# Carry: .whl (wheels the device lacks) and .data (examples/gpu_lease/prepare_data.py).
#   device run: bash examples/gpu_lease/run.sh          (carry: [.whl, .data])
# .whl holds what the device's Python 3.12 lacks, fetched here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl vector-quantize-pytorch einx \
#     torch-einops-utils loguru frozendict soundfile cffi pycparser soxr
#   dry run on CPU: DRY=1 PY=.venv/bin/python bash examples/gpu_lease/run.sh
#   a second lease continuing the hybrid: CONTINUE=runs/gpu1 JOBS=hybrid bash ...  (carry runs/gpu1/hybrid-export)
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-540}          # seconds from the start until everything is under $OUT
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu_lease_out}
RUNS=${RUNS:-runs/gpu}
mkdir -p "$OUT" "$RUNS"
if [ -d .whl ] && [ -z "${DRY:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-$PWD}
left() { echo $(( T0 + BUDGET - $(date +%s) )); }
(nvidia-smi
 $PY -c "import torch, speechtok; print(torch.__version__, torch.cuda.is_available(), speechtok.__version__)"
 nproc; free -g) > "$RUNS/env.txt" 2>&1

DATA="data.sources=[.data/librispeech_samples/manifest.tsv,.data/speechocean762/manifest.tsv]"
if [ -n "${DRY:-}" ]; then
  COMMON="train.device=cpu train.precision=bf16 train.steps=3 train.batch_size=2 train.log_every=1 validation.every=0"
  BENCH_ARGS="--limit 20 --workers 0,2 --device cpu"; MINUTES=1
else
  COMMON="train.threads=4 validation.every=0 train.log_every=50 train.checkpoint_every=500"
  BENCH_ARGS="--limit 0 --workers ${BENCH_WORKERS:-0,4,8,14} --device cuda"
fi

# 1. pre-tokenization on CUDA, alone on the machine (issue 8), if asked for
if [ -n "${BENCH:-}" ]; then
  timeout ${BENCH_TIMEOUT:-140} $PY benchmarks/pretokenize.py --data .data $BENCH_ARGS \
    --profile "$RUNS/pretokenize.prof.txt" > "$RUNS/pretokenize.log" 2>&1
  echo "pretokenize rc=$? at $(( $(date +%s) - T0 )) s" >> "$RUNS/env.txt"
fi

# 2. three trainings at once, each time-boxed to end ~40 s before the budget (export and packing follow)
MINUTES=${MINUTES:-$(awk -v s="$(left)" -v m="${MARGIN:-100}" 'BEGIN{printf "%.2f", (s - m) / 60}')}
train() {  # name recipe overrides...
  local name=$1 recipe=$2; shift 2
  timeout $(( $(left) - 25 )) $PY -m speechtok.cli train "$recipe" "$DATA" $COMMON train.max_minutes="$MINUTES" "$@" \
    --run-dir "$RUNS/$name" > "$RUNS/$name.log" 2>&1
  echo "$name train rc=$? at $(( $(date +%s) - T0 )) s" >> "$RUNS/env.txt"
  $PY -m speechtok.cli export "$RUNS/$name" -o "$RUNS/$name-export" --dtype float16 >> "$RUNS/$name.log" 2>&1
  tar cf "$OUT/$name.tar" -C "$RUNS" "$name-export" "$name/log.csv" "$name/recipe.yaml" "$name.log" 2>/dev/null
  # the last step's weights too (files come back at 16 MiB each): an EMA started late still leans on early steps
  $PY -m speechtok.cli export "$RUNS/$name" -o "$RUNS/$name-raw" --no-ema --dtype float16 >> "$RUNS/$name.log" 2>&1 \
    && tar cf "$OUT/$name-raw.tar" -C "$RUNS" "$name-raw"
}
# CONTINUE=DIR: a later lease of the chain starts each run from DIR/NAME-export (generator weights only: the
# optimizer and discriminator states do not fit a lease's 64 MiB); the discriminators start anew.
init() {  # name [first lease's weights]
  if [ -n "${CONTINUE:-}" ]; then echo "train.init_from=$CONTINUE/$1-export"
  elif [ -n "${2:-}" ]; then echo "train.init_from=$2"; fi
}
for job in ${JOBS:-hybrid hubert hubert-perturbed}; do
  case $job in
    codec) train codec codec $(init codec speechtok/pretrained/speechtok-codec-16k) task_config.adversarial_start=0 \
             train.batch_size=32 train.warmup_steps=200 train.steps=6000 train.ema_start=0 & ;;
    hybrid) train hybrid speechtokenizer task_config.teacher=speechtok/pretrained/speechtok-hubert-units \
              task_config.adversarial_start=0 train.batch_size=32 train.warmup_steps=${WARMUP:-500} \
              train.steps=${STEPS:-6000} train.ema_start=${EMA_START:-1000} $(init hybrid) & ;;
    hubert|hubert-perturbed)  # the second hears 3 crops in 4 with its voice shifted (perturb_prob)
      train $job hubert "task_config.targets={kind: units, model: speechtok/pretrained/speechtok-hubert-units}" \
        train.batch_size=32 train.warmup_steps=500 train.steps=8000 $(init $job) \
        task_config.perturb_prob=$([ $job = hubert ] && echo 0 || echo 0.75) & ;;
    *) echo "unknown job $job" >&2 ;;
  esac
done
wait
tar cf "$OUT/logs.tar" -C "$RUNS" env.txt $(cd "$RUNS" && ls pretokenize.* 2>/dev/null)
echo "done at $(( $(date +%s) - T0 )) s"
