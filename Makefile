# The two commands of the README: `make demo` and `make test`. Each sets up .venv on a
# fresh machine (PyTorch's CPU wheel first, so no CUDA packages are pulled), then runs.
# `make test-floor` (CI runs it after `make test`) runs a core suite in .venv-floor, against
# the lowest Ray and Optuna that pyproject.toml admits.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

# The floors are read from pyproject.toml's `>=` (one place): "ray[tune]>=2.22,<3" pins
# ray[tune]==2.22 here. The core suite: every controller's contract (Optuna), the
# recorder (Ray Tune's searcher and callback), one study end to end through real Ray Tune.
FLOOR_VENV  := .venv-floor
FLOOR_BIN   := $(FLOOR_VENV)/bin
FLOOR_PINS  := $(shell sed -nE 's/^ *"(ray\[tune\]|optuna)>=([0-9.]+).*/\1==\2/p' pyproject.toml)
FLOOR_TESTS := tests/search/test_contract.py tests/search/test_spec.py \
	tests/studies/test_recorder.py \
	tests/studies/test_end_to_end.py::test_digits_study_records_every_trial

.PHONY: demo test test-floor lint setup clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test,postgres,nni,bench,export,monitor]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/archtune demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

$(FLOOR_BIN)/.installed: pyproject.toml
	@test "$(words $(FLOOR_PINS))" = 2 \
		|| { echo "Makefile: no ray[tune]>= and optuna>= floor in pyproject.toml" >&2; exit 1; }
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_BIN)/pip install --quiet --upgrade pip
	$(FLOOR_BIN)/pip install --quiet $(TORCH)
	$(FLOOR_BIN)/pip install --quiet -e ".[test,postgres,nni]" $(foreach p,$(FLOOR_PINS),"$(p)")
	touch $@

test-floor: $(FLOOR_BIN)/.installed
	$(FLOOR_BIN)/python -c "import optuna, ray; print('floor: ray', ray.__version__, 'optuna', optuna.__version__)"
	$(FLOOR_BIN)/python -m pytest $(FLOOR_TESTS)

clean:
	rm -rf $(VENV) $(FLOOR_VENV) archtune_runs *.egg-info
