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

types:
	$(PY) -m mypy

test:
	$(PY) -m pytest -q

check: lint types test
