# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
VENV ?= .venv
PY := $(VENV)/bin/python
CAMVID ?= ../shared/data/camvid
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup test test-kilted lint format demo eval train bench bench-env clean

setup:
	@bash tools/bootstrap.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

# The ROS-facing tests again on ROS 2 Kilted (its own venv): CI runs this after `make test`.
test-kilted:
	@VENV=.venv-kilted FCN_ROS_DISTRO=kilted bash tools/bootstrap.sh
	.venv-kilted/bin/python -m pytest -q test/test_node.py test/test_image_codec.py test/test_replay.py

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

demo: setup
	$(PY) -m fcn_perception demo --out demo_out

eval: setup
	$(PY) -m fcn_perception eval --data $(CAMVID) --split val --class-map config/class_maps/camvid_to_lanes.yaml --json runs/eval_val.json

# The shipped model in four stages: CamVid (config/train_camvid.yaml), then CamVid + Cityscapes,
# then the lane class on CamVid + Cityscapes + camvid_lanes (config/train_lanes.yaml), then the
# stride-4 skip with pseudo-labelled paint (config/train_lanes_fcn4s.yaml).
train: setup
	$(PY) -m fcn_perception train --config config/train_camvid.yaml
	$(PY) -m fcn_perception train --config config/train_camvid_cityscapes.yaml
	$(PY) -m fcn_perception train --config config/train_lanes.yaml
	$(PY) -m fcn_perception train --config config/train_lanes_fcn4s.yaml

bench: setup
	$(PY) -m fcn_perception bench --backend openvino,onnxruntime --size 480x360 --frames 100 --repeat 3

# Optional: torch 2.14.1 + torchvision 0.29.1 (5.5 GB) for the peer networks in `make bench`
# (timed on ONNX Runtime and OpenVINO, as ours).
bench-env:
	[ -x .venv-bench/bin/python ] || python3 -m venv .venv-bench
	.venv-bench/bin/pip install -q torch==2.14.1 torchvision==0.29.1 onnx==1.23.2 onnxruntime==1.32.0 openvino==2026.4.0 numpy

clean:
	rm -rf build install log demo_out .pytest_cache
