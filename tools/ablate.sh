#!/usr/bin/env bash
# Short, equal-budget training runs that isolate one knob each (MODEL.md, "What helped").
# Each run: the recipe of config/train_camvid.yaml with one change and the same number of steps (ITERS),
# so runs compare fairly however busy the machine is; val mIoU at the end of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-250}
run() { name=$1; shift; .venv/bin/python -m fcn_perception train --config config/train_camvid.yaml --restart \
          --out "runs/ablate_$name" --set iterations=$ITERS --set max_minutes=0 --set eval_every=100000 "$@" > "runs/ablate_$name.log" 2>&1; }
run base
run weights_none --set class_weighting=none
run weights_full --set class_weight_power=1.0
run loss_sampling_50 --set loss_sampling=0.5
run one_patch_per_image --set patches_per_image=1
for d in runs/ablate_*/; do
  .venv/bin/python - "$d" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + "log.csv")))
r = max(rows, key=lambda r: float(r["val_miou"]))
print(f"{sys.argv[1]:<36} steps {r['step']:>5}  val mIoU {float(r['val_miou'])*100:5.1f}  Road {float(r['val_road_iou'])*100:5.1f}  acc {float(r['val_pixel_acc'])*100:5.1f}")
PY
done
