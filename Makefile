# nodewall — `make demo` and `make test` are the two commands a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python
NW := $(VENV)/bin/nodewall
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit lint bench clean

setup:
	@bash .ci/setup

demo: setup
	$(NW) demo

test: setup
	$(PY) -m pytest -q -rs $(PYTEST_ARGS) tests

test-unit: setup
	$(PY) -m pytest -q tests/unit

lint: setup
	$(VENV)/bin/ruff check engine tui bench tests

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info
