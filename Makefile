# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
VENV ?= .venv
PY := $(VENV)/bin/python
CAMVID ?= ../shared/data/camvid
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup test lint format demo eval train colcon clean

setup:
	@bash tools/bootstrap.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

demo: setup
	$(PY) -m fcn_perception demo --out demo_out

eval: setup
	$(PY) -m fcn_perception eval --data $(CAMVID) --split val --json runs/eval_val.json

train: setup
	$(PY) -m fcn_perception train --config config/train_camvid.yaml

clean:
	rm -rf build install log demo_out .pytest_cache
