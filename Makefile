# Two entry points: `make demo` (the main job) and `make test` (the whole suite). Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-core lint format clean reproduce speed

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bsarec demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

# The fast tier while editing: every test not marked slow (no long training, no subprocesses)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The suite without the optional extras (.venv-core holds bsarec and its test tools only): what needs an extra is
# skipped with the extra named, everything else must pass.
CORE := .venv-core
$(CORE)/.installed: pyproject.toml constraints.txt
	test -x $(CORE)/bin/python || $(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(CORE)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(CORE)/.installed

test-core: $(CORE)/.installed
	$(CORE)/bin/python -m pytest

# Benchmarks (long; resumable). DATA_DIR holds the benchmark files, e.g. ../shared/data.
DATA_DIR ?= ../shared/data
# BSARec with the paper's presets on LastFM and Beauty, 3 seeds (cells shared with benchmarks/grids.sh baselines-*)
reproduce: $(STAMP)
	$(BIN)/bsarec benchmark -m bsarec -d LastFM,Beauty --seeds 42,43,44 --data-dir $(DATA_DIR) \
		--runs benchmarks/runs/baselines --output benchmarks/results/reproduce

speed: $(STAMP)
	$(BIN)/python benchmarks/speed.py --data-dir $(DATA_DIR)

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) $(CORE) runs .pytest_cache .ruff_cache
