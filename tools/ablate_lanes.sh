#!/usr/bin/env bash
# What each of the lane issue's three changes brings at equal steps (MODEL.md, stage four, "At equal
# steps"): the stage-four recipe (config/train_lanes_fcn4s.yaml) from the same start — stage three,
# lanes_lite0_fcn8s, at runs/lanes_lite0_fcn8s/best.pt (from git history:
# `git show f679147:fcn_perception/models/lanes_lite0_fcn8s.pt`) — for ITERS steps each:
#   fcn8s_labelled   the 308-frame lane labels, FCN-8s, no pseudo-labels   (the data)
#   fcn4s_labelled   ... grown to FCN-4s                                     (+ the finer path)
#   fcn4s_pseudo     ... and paint pseudo-labelled inside CamVid's and Cityscapes' road (the recipe)
# Selected on the same sets at the last step. Prints stage three's own row (train --select-only), then
# each run's last selection row.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-300}
run() { name=$1; shift; [ -f "runs/ablate_lanes_$name/best.pt" ] && [ -z "${AGAIN:-}" ] && return 0
        .venv/bin/fcn-perception train --config config/train_lanes_fcn4s.yaml --restart \
          --out "runs/ablate_lanes_$name" --set iterations=$ITERS --set max_minutes=0 --set eval_every=100000 "$@" > "runs/ablate_lanes_$name.log" 2>&1; }
NO_PSEUDO=(--set datasets.1.pseudo_lanes=false --set datasets.2.pseudo_lanes=false)
run fcn8s_labelled --set model.variant=fcn8s "${NO_PSEUDO[@]}"
run fcn4s_labelled "${NO_PSEUDO[@]}"
run fcn4s_pseudo
echo "stage three itself (step 0):"
.venv/bin/fcn-perception train --config config/train_lanes_fcn4s.yaml --select-only --set model.variant=fcn8s "${NO_PSEUDO[@]}" 2>&1 | grep -E "mIoU"
for d in runs/ablate_lanes_*/; do
  .venv/bin/python - "$d" <<'PY'
import csv, sys
r = list(csv.DictReader(open(sys.argv[1] + "log.csv")))[-1]
cols = [k for k in r if k.endswith((":miou", ":road", ":LaneMarking"))]
print(f"{sys.argv[1]:<34} steps {r['step']:>4}  " + "  ".join(f"{k} {float(r[k]) * 100:5.2f}" for k in cols))
PY
done
