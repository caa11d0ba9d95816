#!/usr/bin/env bash
# The GPU half, end to end, on a CUDA machine; writes reports/gpu-<gpu-name>/ (summary.md first):
#   1. train 1 epoch on CUDA with AMP, bf16 (when the GPU has it) and fp16
#   2. torchrun on NCCL: 2 processes if there are 2 GPUs, else 1 (which cannot exercise the all-reduce)
#   3. export fp32, fp16, CPU INT8 and symmetric TensorRT INT8, parity (fp16's above all) measured on CUDA
#   4. the runtime on CUDA and TensorRT (fp32, fp16, symmetric INT8; IO binding), labels compared with
#      the CPU's; --trt-int8 on the CPU INT8 must be refused; every stdout line must be JSON
#   5. catdog-bench run: CUDA / TensorRT rows next to torch CUDA eager (and AMP) and the CPU rows
# Every step runs even when one before it failed (when its inputs exist); what is skipped is printed
# with the reason. Without a CUDA GPU nothing runs: it says why and exits 2.
# Usage: scripts/gpu-check.sh [DEVICE_ID]
#   env: DATA=../shared/datasets/dogs-vs-cats (train/ and test/, Kaggle names) WORK=runs/gpu-check
#        REPORTS=reports ARCH=efficientnet_lite0 PHOTOS=200 (runtime and benchmark photos)
# Exit: 0 every step that could run passed, 1 a step failed, 2 no CUDA GPU here.
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=${1:-0}
DATA=${DATA:-../shared/datasets/dogs-vs-cats}
WORK=${WORK:-runs/gpu-check}
REPORTS=${REPORTS:-reports}
ARCH=${ARCH:-efficientnet_lite0}
PHOTOS=${PHOTOS:-200}
PY=${PYTHON:-python3}
skipped=()
failed=()

skip() { skipped+=("$1: $2"); echo "SKIP  $1: $2"; }

while IFS='=' read -r key value; do
  printf -v "$key" '%s' "$value"  # TORCH_CUDA NGPU GPU_NAME BF16 ORT_CUDA ORT_TRT ... from gpu_check.py
done < <("$PY" scripts/gpu_check.py facts --device-id "$DEV")
if [ "${TORCH_CUDA:-0}" != 1 ] && [ "${ORT_CUDA:-0}" != 1 ]; then
  echo "no CUDA GPU here: torch: ${TORCH_WHY:-unknown}; onnxruntime CUDA: ${ORT_CUDA_WHY:-unknown}" >&2
  for step in "CUDA training with AMP bf16 and fp16" "torchrun NCCL run" "export with fp16 parity on CUDA" \
              "runtime on CUDA and TensorRT (fp32, fp16, symmetric INT8)" "benchmark CUDA / TensorRT rows"; do
    skip "$step" "no CUDA GPU"
  done
  echo "nothing GPU-side was checked; run this on a CUDA machine" >&2
  exit 2
fi

OUT="$REPORTS/gpu-$SLUG"
mkdir -p "$OUT" "$WORK/logs"
echo "GPU $DEV: $GPU_NAME ($NGPU visible to torch); onnxruntime: $ORT_PROVIDERS; report: $OUT"
[ "$ORT_TRT" = 1 ] || skip "TensorRT rows and runs" "$ORT_TRT_WHY"
[ "$ORT_CUDA" = 1 ] || skip "ORT CUDA rows and runs" "$ORT_CUDA_WHY"

# step NAME CMD...: run, log to $WORK/logs/NAME.log, record the outcome (later steps still run)
step() {
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$WORK/logs/$name.log" 2>&1; then
    echo "OK    $name ($((SECONDS - t0)) s)"
  else
    failed+=("$name"); echo "FAIL  $name ($((SECONDS - t0)) s): $(tail -n 1 "$WORK/logs/$name.log")"
  fi
}

# A fixed subset of test photos for the runtime and the benchmark (symlinks, sorted names).
mkdir -p "$WORK/photos"
find "$DATA/test" -maxdepth 1 -name '*.jpg' | sort | head -n "$PHOTOS" | while read -r f; do
  ln -sf "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$WORK/photos/"
done

# 1-2. Training on CUDA.
TRAIN=(--data "$DATA/train" --arch "$ARCH" --pretrained --epochs 1 --seed 0 --quiet --no-plots)
if [ "$TORCH_CUDA" = 1 ]; then
  if [ "$BF16" = 1 ]; then
    step train-bf16 catdog-train "${TRAIN[@]}" --device "cuda:$DEV" --amp bf16 --out "$WORK/train-bf16"
  else
    skip "AMP bf16 training" "$GPU_NAME has no bfloat16"
  fi
  step train-fp16 catdog-train "${TRAIN[@]}" --device "cuda:$DEV" --amp fp16 --out "$WORK/train-fp16"
  nproc=$([ "$NGPU" -ge 2 ] && echo 2 || echo 1)
  [ "$nproc" = 2 ] || skip "NCCL all-reduce across ranks" "1 GPU: torchrun runs 1 process (NCCL needs a GPU per rank)"
  step "torchrun-nccl-x$nproc" "$PY" -m torch.distributed.run --nproc_per_node "$nproc" -m catdog.train.cli \
    "${TRAIN[@]}" --device cuda --out "$WORK/ddp"
else
  skip "CUDA training and torchrun" "$TORCH_WHY"
fi

# 3. Export, parity on CUDA where onnxruntime has it.
CKPT="$WORK/train-fp16/best.pth"
if [ -f "$CKPT" ]; then
  where=$([ "$ORT_CUDA" = 1 ] && echo cuda || echo cpu)
  [ "$where" = cuda ] || skip "fp16 parity on CUDA" "measured on the CPU: $ORT_CUDA_WHY"
  # --allow-gate-failure: a 1-epoch model may miss a gate; the report shows which, the GPU path still runs
  step export catdog-export --ckpt "$CKPT" --out "$WORK/export" --fp16 --int8 --int8-for tensorrt \
    --calib "$DATA/train" --calib-count 200 --parity "$WORK/photos" --labels-from-names \
    --parity-provider "$where" --allow-gate-failure
  mkdir -p "$OUT/export" && cp "$WORK/export/export-report."* "$OUT/export/" 2>/dev/null
else
  skip "export" "no fp16 training checkpoint ($CKPT)"
fi

# 4. The runtime on the GPU providers, against the CPU's labels.
EXP="$WORK/export"
rt() {  # rt NAME MODEL ARGS...: one runtime run over the photos, --json on stdout
  local name=$1 model=$2; shift 2
  step "runtime-$name" sh -c "catdog-runtime '$WORK/photos' --model '$EXP/$model' --device-id $DEV --json $* \
    > '$WORK/$name.jsonl'"
}
: > "$OUT/runtime.txt"
if [ -f "$EXP/model.onnx" ]; then
  rt cpu model.onnx --provider cpu
  echo "cpu (the reference): $(grep -c . "$WORK/cpu.jsonl" 2>/dev/null || echo 0) labels" >> "$OUT/runtime.txt"
  runs=()
  [ "$ORT_CUDA" = 1 ] && runs+=("cuda:model.onnx:--provider cuda")
  [ "$ORT_TRT" = 1 ] && runs+=("trt-fp32:model.onnx:--provider tensorrt" \
    "trt-fp16:model.fp16.onnx:--provider tensorrt --trt-fp16" "trt-int8:model.int8-trt.onnx:--provider tensorrt --trt-int8")
  for r in ${runs[@]+"${runs[@]}"}; do
    IFS=: read -r name model args <<< "$r"
    rt "$name" "$model" $args
    if [ -s "$WORK/$name.jsonl" ]; then  # every stdout line parses, and the labels agree with the CPU's
      echo "$name: $("$PY" scripts/gpu_check.py agreement "$WORK/cpu.jsonl" "$WORK/$name.jsonl" 2>&1); " \
           "$(grep -h '^provider' "$WORK/logs/runtime-$name.log" | head -n 1)" >> "$OUT/runtime.txt"
    fi
  done
  if [ "$ORT_TRT" = 1 ]; then  # the asymmetric CPU INT8 must be refused, in one line, nothing on stdout
    step trt-int8-refuses-asymmetric sh -c "! catdog-runtime '$WORK/photos' --model '$EXP/model.int8.onnx' \
      --provider tensorrt --trt-int8 --json > '$WORK/refused.out' 2> '$WORK/refused.err' && [ ! -s '$WORK/refused.out' ] \
      && grep -q 'is asymmetric INT8' '$WORK/refused.err'"
  fi
else
  skip "runtime on CUDA / TensorRT" "no exported model.onnx"
fi

# 5. The benchmark: GPU rows beside torch CUDA eager and the CPU rows.
if [ -f "$EXP/model.onnx" ]; then
  provs=cpu
  { [ "$ORT_CUDA" = 1 ] || [ "$TORCH_CUDA" = 1 ]; } && provs="$provs,cuda"
  [ "$ORT_TRT" = 1 ] && provs="$provs,tensorrt"
  torch_args=()
  [ -f "$CKPT" ] && [ "$TORCH_CUDA" = 1 ] && torch_args=(--torch-ckpt "$CKPT")
  step bench catdog-bench run "$EXP" ${torch_args[@]+"${torch_args[@]}"} --providers "$provs" --batch 1,32 --data "$WORK/photos" \
    --device-id "$DEV" --out "$OUT" --name bench --coldstart-runs 3
fi

{ printf 'failed: %s\n' "${failed[@]:-none}"; printf 'skipped: %s\n' "${skipped[@]:-none}"; } > "$OUT/steps.txt"
cp -r "$WORK/logs" "$OUT/" 2>/dev/null
"$PY" scripts/gpu_check.py summary "$OUT" > /dev/null && echo "report: $OUT/summary.md"
for s in ${skipped[@]+"${skipped[@]}"}; do echo "skipped: $s"; done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
