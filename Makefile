# netspec developer commands. `make test` is what CI runs.
PY ?= python

.PHONY: test test-fast lint typecheck golden docs bench

test: lint typecheck
	$(PY) -m pytest -n 2 -q

test-fast:  ## the torch-free tests only
	$(PY) -m pytest -q -m "not torch"

lint:
	$(PY) -m ruff check netspec tests bench
	$(PY) -m ruff format --check netspec tests bench

typecheck:
	$(PY) -m mypy

golden:  ## regenerate golden files (diagnostics, emitted code) after an intended change
	UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_golden.py tests/test_emit.py -k golden

docs:  ## regenerate the generated part of docs/language.md from the registry
	$(PY) -m netspec docs --write docs/language.md

bench:
	$(PY) bench/check_speed.py
