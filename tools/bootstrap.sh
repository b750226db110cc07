#!/usr/bin/env bash
# One command sets up everything: .venv with the pinned lock of the chosen ROS 2 distro.
# Idempotent and fast when nothing changed (a stamp holds the hash of the lock installed).
#   FCN_ROS_DISTRO=jazzy (default, LTS) | kilted
set -euo pipefail
cd "$(dirname "$0")/.."
distro=${FCN_ROS_DISTRO:-jazzy}
lock=requirements/${distro}.lock
venv=${VENV:-.venv}
[ -f "$lock" ] || { echo "bootstrap: no lock for ROS 2 '$distro' ($lock)" >&2; exit 2; }
want=$( (sha256sum "$lock" setup.py requirements/tensorrt-bindings.txt; ls ../shared/wheels 2>/dev/null) | sha256sum | cut -d' ' -f1)
stamp=$venv/.fcn_perception_lock
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi
python=$(command -v python3.11 || command -v python3)
echo "bootstrap: installing $lock into $venv (python: $($python --version))"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade "pip>=24"
# torch first, alone: on this workplace's machines torch==2.13.0 resolves to the local CPU wheel;
# on a CUDA machine, install the CUDA build of torch 2.13.0 before running this script.
"$venv/bin/python" -m pip install -q "$(grep '^torch==' "$lock")"
"$venv/bin/python" -m pip install -q -r "$lock"
# launch and launch_ros (Jazzy) are not on PyPI: wheels beside the repository, for the launch-file tests
wheels=../shared/wheels
if compgen -G "$wheels/launch*.whl" > /dev/null; then
  "$venv/bin/python" -m pip install -q --no-deps "$wheels"/launch*.whl
fi
# the package itself, editable: .venv/bin/fcn-perception and .venv/bin/fcn_perception_node work from any folder
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
# TensorRT's bindings wheels (no libraries), pinned by hash, for the names test; never installed
bindings=$venv/tensorrt-bindings
mkdir -p "$bindings"
grep -v '^#' requirements/tensorrt-bindings.txt | while read -r req sha; do
  [ -n "$req" ] || continue
  if ! ls "$bindings"/*"${req#*==}"-*.whl > /dev/null 2>&1; then
    "$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$bindings" "$req" > /dev/null 2>&1 || echo "bootstrap: could not download $req (the TensorRT names test will skip)"
  fi
  for whl in "$bindings"/*"${req#*==}"-*.whl; do
    [ -f "$whl" ] || continue
    if [ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$sha" ]; then echo "bootstrap: $whl does not match its pinned sha256; removed" >&2; rm -f "$whl"; fi
  done
done
touch "$venv/COLCON_IGNORE"  # colcon build in this folder must not walk into the venv
echo "$want" > "$stamp"
echo "bootstrap: done"
