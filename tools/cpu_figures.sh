#!/bin/bash
# Every figure the CPU issue's acceptance names, on the CPU this runs on, in one sitting: the CPU and
# its flags, the installed node's start-up memory (empty cache, then warm), the rigs under load (and
# two 640x480 cameras on ONNX Runtime), the frame path per stage with the rig's ceiling, and
# inference against the peer on its fastest runtime. BENCHMARKS.md keeps one section per kind of CPU.
#
#   tools/cpu_figures.sh              this tree
#   tools/cpu_figures.sh eda391e      this tree against that commit (a worktree), interleaved pair by pair
#
# ROUNDS (default 2) rounds of each figure; PEERS=0 skips the peer (it needs `make bench-env`).
# A background `fcn-perception train` is paused (SIGSTOP) for the run and resumed at the end.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
ROUNDS=${ROUNDS:-2}
BASE=${1:-}
TREES=new
if [ -n "$BASE" ]; then
  WT=$(mktemp -d)/base
  git worktree add --detach "$WT" "$BASE" > /dev/null || { echo "cpu_figures: cannot check out $BASE" >&2; exit 2; }
  TREES="base new"
fi
PAUSED=$(pgrep -f "fcn-perception train" | tr '\n' ' ')
[ -n "$PAUSED" ] && kill -STOP $PAUSED
resume() { [ -n "$PAUSED" ] && kill -CONT $PAUSED; }
trap 'resume; [ -n "$BASE" ] && git worktree remove --force "$WT"' EXIT

run() {  # run TREE ARGS...: fcn-perception of that tree
  local dir=$ROOT
  [ "$1" = base ] && dir=$WT
  shift
  (cd "$dir" && PYTHONPATH=$dir timeout 600 "$PY" -m fcn_perception "$@" 2>&1)
}

"$PY" -c "from fcn_perception.cpu import this_cpu; c = this_cpu(); print(c.describe()); print('flags:', ' '.join(c.flags))"
echo "cores: $(nproc); tree: $(git log --oneline -1)${BASE:+; base: $(git -C "$WT" log --oneline -1)}"
for r in $(seq "$ROUNDS"); do
  for t in $TREES; do
    cache=$(mktemp -d)
    echo "== start-up, round $r, $t, empty cache"
    FCN_PERCEPTION_CACHE=$cache run $t load --startup --frames 30 | tail -1
    echo "== start-up, round $r, $t, warm cache"
    FCN_PERCEPTION_CACHE=$cache run $t load --startup --frames 30 | tail -1
    rm -rf "$cache"
  done
done
for r in $(seq "$ROUNDS"); do
  for rig in "2 1280x720" "2 640x480" "1 480x360" "2 640x480 onnxruntime"; do  # the last: where OpenVINO is not installed
    set -- $rig
    backend=${3:-auto}
    for t in $TREES; do
      echo "== load, round $r, $t, $1 x $2 at 30 Hz for 20 s, backend $backend"
      run $t load --cameras "$1" --rate 30 --frames 600 --size "$2" --ground --param "backend:=$backend" | grep -E "RSS|received|fused|CPU from"
    done
  done
done
for size in 1280x720 640x480; do  # per stage on one thread, then the rig's ceiling (the network on every core)
  for t in $TREES; do
    echo "== frame path and ceiling, $t, $size"
    run $t bench --frame-path --size "$size" --precision int8 | tail -5
  done
done
if [ "${PEERS:-1}" != 0 ] && [ -x "$ROOT/.venv-bench/bin/python" ]; then
  for size in 640x360 480x360; do
    for t in $TREES; do
      echo "== inference against the peer, $t, $size (3 interleaved rounds)"
      run $t bench --backend openvino --size $size --frames 100 --precision int8 --repeat 3 --peers-python "$ROOT/.venv-bench/bin/python" | tail -6
    done
  done
else
  echo "== the peer skipped (PEERS=0, or no .venv-bench: make bench-env)"
fi
