# One command runs everything CI runs: `make check`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv check lint types test

venv:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

types:
	$(PY) -m mypy

# One pytest worker per core (pytest-xdist): most tests wait on real processes and sockets.
test:
	$(PY) -m pytest -q -n auto

check: lint types test
