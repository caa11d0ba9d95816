#!/usr/bin/env bash
# Rebuild the shipped default model (runtime/assets/model.onnx) from scratch, on CPU:
# prepare a resized cache -> train efficientnet_lite0 (ImageNet-pretrained) -> export with parity
# gates on the labeled test set -> check the runtime's accuracy -> copy the chosen artifact.
# Usage: scripts/reference-model.sh   (env: DATA=../shared/datasets/dogs-vs-cats WORK=runs/reference)
set -euo pipefail
DATA=${DATA:-../shared/datasets/dogs-vs-cats}
WORK=${WORK:-runs/reference}
mkdir -p "$WORK"
start=$(date +%s)

catdog-train prepare "$DATA/train" "$WORK/train256" --resize 256
# Stem + first 6 blocks frozen: those run at the highest resolutions, so a CPU step is ~3x faster,
# and the ImageNet low-level features need no change for cats vs dogs.
catdog-train --data "$WORK/train256" --arch efficientnet_lite0 --pretrained \
  --arch-kw freeze_blocks=6 --epochs 6 --optimizer adam --lr 2e-4 --scheduler cosine \
  --label-smoothing 0.1 --seed 0 --out "$WORK/run" --quiet
train_end=$(date +%s)

catdog-export --ckpt "$WORK/run/best.pth" --out "$WORK/export" --int8 --calib "$WORK/train256" \
  --calib-count 200 --fp16 --bake-preprocess --parity "$DATA/test" --parity-count 400 --labels-from-names

for m in model.onnx model.int8.onnx; do
  catdog-runtime "$DATA/test" --model "$WORK/export/$m" --json > "$WORK/test-${m%.onnx}.jsonl" || true
  python3 - "$WORK/test-${m%.onnx}.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ok = sum(r.get("label") == r["source"].rsplit("/", 1)[-1].split(".")[0] for r in rows)
print(f"{sys.argv[1]}: {ok}/{len(rows)} = {100 * ok / len(rows):.2f}% on the test set")
PY
done
echo "train: $((train_end - start)) s, total: $(( $(date +%s) - start )) s"
