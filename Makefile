# Two commands on a fresh machine (Python 3.10+):
#   make demo   - create .venv, install cytoflow-res, run it on the bundled example data
#   make test   - create .venv, install cytoflow-res with test tools, run lint, types and tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "cytoflow-res needs Python 3.10 or newer; set PYTHON=python3.1x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cytoflow-res info example_fcs/apoptosis/parental_vehicle_r1.fcs example_fcs/cellcycle/parental_vehicle_r1.fcs
	$(BIN)/cytoflow-res demo --out demo_results

lint: $(STAMP)
	$(BIN)/ruff check cytoflow_res tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_cellcycle.py --blas-threads 1
	$(BIN)/python benchmarks/bench_apoptosis.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
