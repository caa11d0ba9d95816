#!/usr/bin/env bash
# Rebuild the shipped models (runtime/assets/model.onnx and model.int8.onnx) from scratch, on CPU.
# Every choice is made on dogs-vs-cats/train only; the test folder and pet-breeds-dev are used once,
# at the end, to report. The choices and the figures they were made on go to $WORK/choices.txt.
#   1. prepare a 320 px cache of the training photos
#   2. backbone: 5-fold CV of the linear probe (catdog-train cv --head probe --epochs 0) for
#      efficientnet_lite0/1/2. Rule, fixed before measuring: the most accurate by CV mean whose INT8
#      batch-1 latency on a laptop-class CPU stays under ~20 ms (real time with headroom on a Jetson).
#   3. recipe, on the fixed seeded 80/20 split: the probe vs LP-FT (probe head, BatchNorm frozen,
#      EMA). LP-FT ships only if it beats the probe on (val acc, then val loss), the trainer's own key.
#   4. export: INT8 calibration method and fp32 layers chosen on held-out calibration photos;
#      parity on the test set and pet-breeds-dev only measures.
#   5. runtime accuracy on both sets (catdog-runtime --json); copy both ONNX files into runtime/assets.
# Usage: scripts/reference-model.sh   (env: SHARED=../shared/datasets WORK=runs/reference ARCHS=...)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/datasets}
WORK=${WORK:-runs/reference}
ARCHS=${ARCHS:-efficientnet_lite0 efficientnet_lite1 efficientnet_lite2}
mkdir -p "$WORK"
choices="$WORK/choices.txt"
start=$(date +%s)

catdog-train prepare "$SHARED/dogs-vs-cats/train" "$WORK/train320" --resize 320

# 2. Backbone by cross-validation of its probe (features extracted once per backbone).
for arch in $ARCHS; do
  [ -f "$WORK/cv-$arch/cv.json" ] || catdog-train cv --folds 5 --data "$SHARED/dogs-vs-cats/train" \
    --arch "$arch" --pretrained --head probe --epochs 0 --seed 0 --out "$WORK/cv-$arch" --quiet
done
python3 - "$WORK" $ARCHS > "$choices" <<'PY'
import json, sys
work, archs = sys.argv[1], sys.argv[2:]
rows = {a: json.load(open(f"{work}/cv-{a}/cv.json")) for a in archs}
for a, r in rows.items():
    print(f"cv probe {a}: {100 * r['val_acc_mean']:.2f} +- {100 * r['val_acc_std']:.2f} (pooled {r['pooled']})")
best = max(rows, key=lambda a: rows[a]["val_acc_mean"])
print(f"backbone: {best} (highest CV mean; check its INT8 latency against the 20 ms rule in the export report)")
PY
cat "$choices"
ARCH=$(sed -n 's/^backbone: \([a-z0-9_]*\).*/\1/p' "$choices")

# 3. The probe and LP-FT on the same fixed split; the better on validation ships.
catdog-train probe --data "$WORK/train320" --arch "$ARCH" --seed 0 --out "$WORK/probe" --quiet | tee "$WORK/probe.json"
# freeze_blocks: the first three stages stay frozen (they run at the highest resolutions: ~3x faster
# CPU steps); --freeze-bn keeps BatchNorm on its ImageNet statistics, so the probe's head sees the
# features it was fitted on; lr 3e-5 and an EMA keep the fine-tune close to the pretrained features.
blocks=$([ "$ARCH" = efficientnet_lite0 ] && echo 6 || echo 8)
catdog-train --data "$WORK/train320" --arch "$ARCH" --pretrained --head probe --freeze-bn --ema 0.99 \
  --arch-kw freeze_blocks="$blocks" --epochs 3 --lr 3e-5 --scheduler cosine --seed 0 --out "$WORK/lpft" \
  --quiet | tee "$WORK/lpft.json"
python3 - "$WORK" >> "$choices" <<'PY'
import json, sys
w = sys.argv[1]
p, f = (json.loads(open(f"{w}/{n}.json").read().strip().splitlines()[-1]) for n in ("probe", "lpft"))
key = lambda s: (s["best_val_acc"], -s["best_val_loss"])
for name, s in (("probe", p), ("lpft", f)):
    print(f"recipe {name}: val acc {s['best_val_acc']:.4f}, val loss {s['best_val_loss']:.4f}, T {s['temperature']:.3f}")
print(f"recipe: {'lpft' if key(f) > key(p) else 'probe'}")
PY
RECIPE=$(sed -n 's/^recipe: //p' "$choices")

# 3b. The fixed split is 400 photos: a tie there (as in the 2026-11 run, 99.25% each) is decided by the
# loss alone. Confirm on 5-fold CV of the same recipe, whose every fold also fits the probe on the same
# split. Rule, fixed before the first run: LP-FT ships if it gets more of the 2,000 CV photos right than
# the probe (pooled), or as many with a lower mean val loss; otherwise the probe ships.
if [ "$RECIPE" = lpft ] && [ "${CONFIRM_CV:-1}" = 1 ]; then
  [ -f "$WORK/cv-lpft/cv.json" ] || catdog-train cv --folds 5 --data "$WORK/train320" --arch "$ARCH" --pretrained \
    --head probe --freeze-bn --ema 0.99 --arch-kw freeze_blocks="$blocks" --epochs 3 --lr 3e-5 \
    --scheduler cosine --seed 0 --out "$WORK/cv-lpft" --quiet
  python3 - "$WORK" >> "$choices" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/cv-lpft/cv.json"))
lp = sum(round(f["val_acc"] * f["val_images"]) for f in r["per_fold"])
pr = sum(round(f["probe_val_acc"] * f["val_images"]) for f in r["per_fold"])
print(f"cv lpft: {r['pooled']}, mean val loss {r['val_loss_mean']:.4f}")
print(f"cv probe (same folds): {r['probe_pooled']}, mean val loss {r['probe_val_loss_mean']:.4f}")
keep = lp > pr or (lp == pr and r["val_loss_mean"] < r["probe_val_loss_mean"])
print(f"recipe after cv: {'lpft' if keep else 'probe'} ({lp} vs {pr} right)")
PY
  RECIPE=$(sed -n 's/^recipe after cv: \([a-z]*\).*/\1/p' "$choices")
  tail -3 "$choices"
fi
tail -3 "$choices"
train_end=$(date +%s)

# 4. Export; the parity sets only measure (both reported, gated, never used for a choice).
catdog-export --ckpt "$WORK/$RECIPE/best.pth" --out "$WORK/export" --int8 --calib "$WORK/train320" \
  --parity "$SHARED/dogs-vs-cats/test" --parity "$SHARED/pet-breeds-dev" --parity-count 600 --labels-from-names

# 4b. The INT8 for VNNI CPUs (8-bit weights; the runtime's default where VNNI is): re-quantized from the
# fp32 graph, calibrated on the training split's photos and chosen on its validation ones (--split).
python scripts/requantize.py "$WORK/export/model.onnx" "$WORK/export/model.int8-vnni.onnx" \
  --calib "$SHARED/dogs-vs-cats/train" --exclude "$SHARED/dogs-vs-cats/test" --exclude "$SHARED/pet-breeds-dev" \
  --split --calib-count 1600 --select-count 400 --int8-target vnni

# 5. What the runtime itself says on both sets (its summary carries the Wilson interval).
for m in model.onnx model.int8.onnx model.int8-vnni.onnx; do
  for set in dogs-vs-cats/test pet-breeds-dev; do
    name="$(basename "$set")-${m%.onnx}"
    catdog-runtime "$SHARED/$set" -r --model "$WORK/export/$m" --json > "$WORK/$name.jsonl" 2> "$WORK/$name.log" || true
    echo "$m on $set: $(grep -o 'accuracy .*' "$WORK/$name.log")" | tee -a "$choices"
  done
done
# Ship both into the runtime package (git diff then shows whether the model changed).
cp "$WORK/export/model.onnx" "$WORK/export/model.int8.onnx" "$WORK/export/model.int8-vnni.onnx" runtime/assets/
echo "train: $((train_end - start)) s, total: $(( $(date +%s) - start )) s"
