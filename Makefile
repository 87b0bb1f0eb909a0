# make demo: set up and write the report; make test: set up and run the tests;
# make docs: set up, check the docstrings' references and build the API reference (build/api).
# TORCH picks the torch requirement (CI passes the pinned CPU build).
PYTHON ?= python3
TORCH ?= torch
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= report

.PHONY: setup demo test docs lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,timeseries,cluster,hf,docs,images,prune,mcmc-jax,arviz,lightning]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/shrinkdrop demo --out $(OUT)

test: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/python -m pytest -q

docs: setup
	$(BIN)/python tools/check_api_refs.py
	$(BIN)/python tools/build_api_docs.py --out build/api

lint: setup
	$(BIN)/ruff check src tests benchmarks tools

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info src/*.egg-info
