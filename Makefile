# One command runs everything CI runs: `make check`.
VENV ?= .venv
PY := $(VENV)/bin/python

# Where `make deb` puts the package (the tests build into a temporary directory).
DIST ?= dist

.PHONY: venv check lint types test deb

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

# dist/wharf_<version>_<arch>.deb for this Debian release: dh-virtualenv, debhelper and
# python3-venv from apt (.ci/run installs them), dependencies from PyPI. packaging/README.md.
deb:
	packaging/build-deb $(DIST)
