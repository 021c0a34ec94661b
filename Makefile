# The three commands of the README. PY is the interpreter that creates the virtual environment.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= default
OUT ?= runs/$(SCALE)

.PHONY: setup reproduce reference test test-slow export readme bench gpu-check

setup:  ## create .venv, install mixup_lab editable with its dev extras, register the papermill kernel
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" wheel "setuptools<82"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name mixup_lab --display-name "Python (mixup_lab)"

reproduce:  ## run every experiment notebook through papermill (SCALE=default|full, DATA_ROOT=, DEVICE=)
	$(BIN)/reproduce --scale $(SCALE) --out $(OUT) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(DEVICE),--device $(DEVICE))

reference:  ## ship the finished run in OUT as the reference of its scale: nbs/experiments/reference/<scale>/ (or DEST=)
	$(BIN)/python -m mixup_lab.compare write-reference $(OUT) $(DEST)

test:  ## package == notebooks, README == index notebook, fast notebook cells, pytest
	bash .ci/check_export.sh
	$(BIN)/python .ci/readme.py --check
	$(BIN)/nbdev_test --n_workers 2 --do_print
	$(BIN)/python -m pytest -q -n 2 tests

test-slow:  ## also the slow tests: every experiment notebook at full scale on stand-in data (about 15 minutes)
	$(BIN)/python -m pytest -q -n 2 --runslow -m slow tests

export:  ## notebooks -> mixup_lab/, then strip notebook noise, then README from nbs/index.ipynb
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean && $(BIN)/python .ci/readme.py

readme:  ## README.md from nbs/index.ipynb
	$(BIN)/python .ci/readme.py

bench:  ## the speed and memory benchmark notebook
	$(BIN)/reproduce --only benchmarks --out $(OUT)

gpu-check:  ## every CUDA path once, timed (one GPU, <= 5 min, no network), step timings to gpu_check_timings.json (under $OUT if set) for reproduce --plan; exits 0 without CUDA
	$(BIN)/python -m mixup_lab.gpucheck
