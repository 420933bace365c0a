# The two commands of the README: `make demo` and `make test`. Each sets up .venv on a
# fresh machine (PyTorch's CPU wheel first, so no CUDA packages are pulled), then runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test lint setup clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test,postgres,nni,bench]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/archtune demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) archtune_runs *.egg-info
