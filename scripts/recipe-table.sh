#!/usr/bin/env bash
# The recipe table's other rows: recipes that were *not* chosen, trained on the same seeded 80/20
# split of dogs-vs-cats/train as the shipped model, exported with the same INT8 choice, and only
# measured on the two evaluation sets (nothing here picks anything; reference-model.sh does that).
# Each row: catdog-train -> catdog-export --int8 --parity test --parity pets -> one table line from
# the export report (fp32 ONNX, INT8, ECE after T), written to $WORK/table.md.
#   plain fine-tune: a random head, BatchNorm trained, lr 1e-4, label smoothing 0.1, 6 epochs
#                    (the previous default's recipe, at the backbone's own input size)
#   LP-FT:           the shipped recipe (probe head, frozen BatchNorm, EMA 0.99, 3 epochs, lr 3e-5)
#   LP-FT + MixUp:   the same with MixUp alpha 0.2
# The same blocks stay frozen in every row (8 for lite1/lite2: ~3x faster CPU steps), so the rows
# differ by the recipe only.
# Usage: scripts/recipe-table.sh [ROW...]   (rows: lite2-ft lite1-lpft lite1-ft lite2-lpft-mixup)
#   env: SHARED=../shared/datasets WORK=runs/recipes CACHE=runs/reference/train320 (the 320 px cache
#   reference-model.sh prepares)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/datasets}
WORK=${WORK:-runs/recipes}
CACHE=${CACHE:-runs/reference/train320}
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(lite2-ft lite1-lpft lite1-ft lite2-lpft-mixup)
mkdir -p "$WORK"
[ -d "$CACHE" ] || catdog-train prepare "$SHARED/dogs-vs-cats/train" "$CACHE" --resize 320

ft="--head random --no-probe --epochs 6 --lr 1e-4 --label-smoothing 0.1"
lpft="--head probe --freeze-bn --ema 0.99 --epochs 3 --lr 3e-5"
for row in "${ROWS[@]}"; do
  case $row in
    lite2-ft) arch=efficientnet_lite2 args=$ft ;;
    lite1-ft) arch=efficientnet_lite1 args=$ft ;;
    lite1-lpft) arch=efficientnet_lite1 args=$lpft ;;
    lite2-lpft-mixup) arch=efficientnet_lite2 args="$lpft --mixup 0.2" ;;
    *) echo "error: unknown row '$row'" >&2; exit 2 ;;
  esac
  out="$WORK/$row"
  start=$(date +%s)
  # shellcheck disable=SC2086  # $args is a list of options
  [ -f "$out/best.pth" ] || catdog-train --data "$CACHE" --arch "$arch" --pretrained --arch-kw freeze_blocks=8 \
    $args --scheduler cosine --seed 0 --out "$out" --quiet
  train_s=$(( $(date +%s) - start ))
  # An INT8 that misses its gate is still measured: the report is what this table reads.
  [ -f "$out/export/export-report.json" ] || catdog-export --ckpt "$out/best.pth" --out "$out/export" --int8 \
    --calib "$CACHE" --parity "$SHARED/dogs-vs-cats/test" --parity "$SHARED/pet-breeds-dev" --parity-count 600 \
    --labels-from-names || echo "$row: export exited $? (gates); reading its report anyway"
  echo "$row: train ${train_s} s, total $(( $(date +%s) - start )) s"
done

python3 - "$WORK" "${ROWS[@]}" > "$WORK/table.md" <<'PY'
import json, sys
from pathlib import Path
from catdog.runtime.spine.metrics import format_accuracy
work, rows = Path(sys.argv[1]), sys.argv[2:]
pct = lambda a: format_accuracy(a["correct"], a["n"])
for row in rows:
    rep = json.loads((work / row / "export" / "export-report.json").read_text())
    for s in rep["parity_sets"]:
        art = {a["name"]: a for a in s["artifacts"]}
        fp, q = art["onnx"], art.get("int8")
        name = "test" if "dogs-vs-cats" in s["name"] else "pets"
        i8 = pct(q["accuracy"]) + ("" if q["passed"] else " (INT8 gate: FAIL)") if q else "—"
        ece = f"{100 * fp['ece_calibrated']:.2f}% / " + (f"{100 * q['ece_calibrated']:.2f}%" if q else "—")
        print(f"| {row} | {name} | {pct(fp['accuracy'])} | {i8} | {ece} | T={rep['temperature']:.3f} |")
PY
cat "$WORK/table.md"
