# netspec developer commands. On a fresh clone, `make run` and `make test` create `.venv`
# (torch's CPU build first, then netspec with its dev tools) and use it; `make test` is what
# CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# Where torch comes from: by default pip's own configuration (PyPI, or the local wheels and mirrors
# a machine sets up, as this project's CI machines do). On a Linux machine that reaches PyPI only,
# PyPI's torch is a multi-GB CUDA build: `make run TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# takes the CPU build instead.
TORCH_INDEX ?=
DATA_DIR ?=

.PHONY: venv run test test-fast lint typecheck golden docs bench vsix

venv: $(VENV)/.installed

# A venv made by hand (the README's commands) that already imports torch and netspec is adopted as it is.
$(VENV)/.installed: pyproject.toml
	@if [ ! -e $@ ] && $(PY) -c "import torch, netspec, pytest" 2>/dev/null; then \
	    echo "using the existing $(VENV)"; \
	else \
	    set -ex; \
	    $(PYTHON) -m venv $(VENV); \
	    $(PY) -m pip install -q --upgrade pip; \
	    $(PY) -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)); \
	    $(PY) -m pip install -q -e ".[dev,all]"; \
	fi
	@touch $@

run: venv  ## train a first spec: MNIST if its data is at hand or downloadable, else addition.net (says which and why)
	$(PY) -m netspec.runtime.quickstart$(if $(DATA_DIR), --data-dir $(DATA_DIR))

test: lint typecheck
	$(PY) -m pytest -n 2 -q

test-fast: venv  ## the torch-free tests only
	$(PY) -m pytest -q -m "not torch"

lint: venv
	$(PY) -m ruff check netspec tests bench
	$(PY) -m ruff format --check netspec tests bench

typecheck: venv
	$(PY) -m mypy

golden: venv  ## regenerate golden files (diagnostics, emitted code, graphs) after an intended change
	UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_golden.py tests/test_emit.py tests/test_distributed.py tests/test_graph.py -k golden

docs: venv  ## regenerate the generated part of docs/language.md from the registry
	$(PY) -m netspec docs --write docs/language.md

bench: venv
	$(PY) bench/check_speed.py

vsix:  ## package the VS Code extension: editors/vscode/netspec-0.1.0.vsix (Node.js 20+; npm reaches its registry)
	@command -v npm >/dev/null || { echo "make vsix needs Node.js 20 or later and npm (nodejs.org)"; exit 2; }
	cd editors/vscode && npm ci --no-audit --no-fund && npm run package
