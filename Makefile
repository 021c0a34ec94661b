# The three commands of the README. PY is the interpreter that creates the virtual environment.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= default
OUT ?= runs/$(SCALE)

.PHONY: setup reproduce test export clean-nbs bench

setup:  ## create .venv, install mixup_lab editable with its dev extras, register the papermill kernel
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" wheel "setuptools<82"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name mixup_lab --display-name "Python (mixup_lab)"

reproduce:  ## run every experiment notebook through papermill (SCALE=default|full)
	$(BIN)/reproduce --scale $(SCALE) --out $(OUT)

test:  ## package == notebooks, fast notebook cells, pytest
	bash .ci/check_export.sh
	$(BIN)/nbdev_test --n_workers 2 --do_print
	$(BIN)/python -m pytest -q tests

export:  ## notebooks -> mixup_lab/, then strip notebook noise
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

bench:  ## the speed and memory benchmark notebook
	$(BIN)/reproduce --only benchmarks --out $(OUT)
