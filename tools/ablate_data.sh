#!/usr/bin/env bash
# What the extra data and the aspect correction do, at equal steps (MODEL.md, "Ablation"): the
# recipe of config/train_camvid_cityscapes.yaml with one change each, ITERS steps from the same
# start, selected on the same sets (CamVid val + the Cityscapes frames set aside).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-300}
run() { name=$1; shift; .venv/bin/fcn-perception train --config config/train_camvid_cityscapes.yaml --restart \
          --out "runs/ablate_data_$name" --set iterations=$ITERS --set max_minutes=0 --set eval_every=100000 "$@" > "runs/ablate_data_$name.log" 2>&1; }
run recipe
run camvid_only --set datasets.1.share=0
run no_aspect_correction --set datasets.1.aspect=1.0
for d in runs/ablate_data_*/; do
  .venv/bin/python - "$d" <<'PY'
import csv, sys
r = list(csv.DictReader(open(sys.argv[1] + "log.csv")))[-1]
cols = [k for k in r if k.endswith(":miou")]
print(f"{sys.argv[1]:<40} steps {r['step']:>4}  " + "  ".join(f"{k.rsplit(':', 1)[0]} {float(r[k]) * 100:5.1f}" for k in cols))
PY
done
