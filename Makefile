# nodewall — `make demo` and `make test` are the two commands a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python
NW := $(VENV)/bin/nodewall
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-unit-nobody coverage lint bench clean image test-image

setup:
	@bash .ci/setup

demo: setup
	$(NW) demo

# the container test needs the image of `make image` (podman, mmdebstrap, ~700 MB):
# it runs in `make test-image`, not here
CONTAINER_TEST = tests/kernel/deploy/test_container_image.py
test: setup lint test-unit-nobody
	$(PY) -m pytest -q -rs --durations=25 $(PYTEST_ARGS) --ignore=$(CONTAINER_TEST) tests

# the unit tier needs no root: as root, run it once more as the unprivileged user nobody
test-unit-nobody: setup
NOBODY = setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp
test-unit-nobody: setup
	@if [ "$$(id -u)" -ne 0 ]; then exit 0; fi; \
	if ! $(NOBODY) test -r tests/unit/__init__.py; then \
	  echo "unit tests as nobody: skipped, this checkout is not readable by nobody"; exit 0; fi; \
	echo "unit tests as user nobody:"; \
	$(NOBODY) $(PY) -m pytest -q -p no:cacheprovider tests/unit

test-unit: setup
	$(PY) -m pytest -q tests/unit

# line coverage of the engine by the unit tier alone (no root); COV=nodewall.engine.safety
# narrows it to one package
COV ?= nodewall.engine
coverage: setup
	$(PY) -m pytest -q tests/unit --cov=$(COV) --cov-report=term-missing:skip-covered

# ruff (with C901, complexity <= 15) and the import contracts of pyproject.toml
lint: setup
	$(VENV)/bin/ruff check engine tui bench tests
	$(VENV)/bin/lint-imports

# bench: the matplotlib extra (PNG plots) once per pyproject.toml version, then the suite
BENCH_STAMP = $(VENV)/.bench-$(shell sha256sum pyproject.toml | cut -c1-16)
$(BENCH_STAMP): pyproject.toml
	$(VENV)/bin/pip install -q -e '.[test,bench]'
	rm -f $(VENV)/.bench-*
	touch $@

bench: setup $(BENCH_STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

# the container image (deploy/container/Containerfile; needs podman, and mmdebstrap
# where the Debian base image cannot be pulled); not part of `make test`
image: setup
	PY=$(PY) bash deploy/container/build-image

# the agent in that image, joined to a lab namespace (builds the image first)
test-image: image
	$(PY) -m pytest -q -rs $(CONTAINER_TEST)

clean:
	rm -rf $(VENV) build *.egg-info
