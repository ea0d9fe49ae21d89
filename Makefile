# The two commands of the README: `make run` and `make test`. Everything else is set up
# on the way: the virtualenv, Python and npm packages, the compiled engine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A second install built with LIVETEMPLATE_NO_EXTENSIONS=1 (no compiled module at all), tested
# from a copy of the tests so that the checkout's own package cannot shadow it.
PURE_VENV ?= .venv-pure
PURE := $(PURE_VENV)/bin/python
PURE_DEPS := $(PURE_VENV)/.deps
PURE_TESTS := .pure-tests
DEPS := $(VENV)/.deps
ENGINE := livetemplate/.engine-built
CLIENT := livetemplate/static/livetemplate-client.browser.js

.DEFAULT_GOAL := test
.PHONY: run test test-pure lint typecheck check bench perf-gate perf client build clean prerequisites wheel

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEPS): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(CLIENT): package.json package-lock.json scripts/fetch-client
	scripts/fetch-client

$(ENGINE): $(DEPS) livetemplate/_render_py.py ext/_render_c.pxd livetemplate/_frames_py.py ext/_frames_c.pxd ext/_sender_c.pyx setup.py
	$(PY) setup.py --quiet build_ext --inplace
	touch $@

client: $(CLIENT)

build: $(DEPS) $(CLIENT) $(ENGINE)

lint: $(DEPS)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(DEPS)
	$(PY) -m mypy

check: lint typecheck

# what make test needs from the machine (Chromium, redis-server, ...), said before anything runs
prerequisites:
	@PYTHON=$(PYTHON) scripts/check-prerequisites

# The performance gates run with the tests (docs/performance.md): the compiled engine's
# regression gate (its speed-up over the twin, measured in the same run, against the stored
# one), 5 seconds, with the load harness's own tests; then the quick load run (2,000
# connections beside the bare asyncio floor) against the M3 floor, about a minute and a half.
# Its fan-out gate compares the median rounds (2.2-2.8x of the floor on this machine; the
# best rounds, reported beside it, move too much from run to run to gate on).
test: prerequisites build check
	$(PY) -m pytest
	$(PY) -m pytest benchmarks/test_regression.py benchmarks/test_recipient.py benchmarks/test_action.py benchmarks/load/test_harness.py -q -p no:cacheprovider --benchmark-disable-gc
	$(PY) -m benchmarks.load --quick --gate --json perf-gate.json
	$(MAKE) --no-print-directory test-pure

$(PURE_DEPS): pyproject.toml setup.py
	$(PYTHON) -m venv $(PURE_VENV)
	$(PURE) -m pip install --quiet --upgrade pip
	LIVETEMPLATE_NO_EXTENSIONS=1 $(PURE) -m pip install --quiet '.[dev]'
	touch $@

# The unit tests on the pure install, with line coverage of the package gated (pyproject.toml).
# build/lib is cleared first: setuptools would package the modules a previous build left there.
test-pure: $(CLIENT) $(PURE_DEPS)
	rm -rf build/lib
	$(PURE) -m pip uninstall --quiet --yes livetemplate
	LIVETEMPLATE_NO_EXTENSIONS=1 $(PURE) -m pip install --quiet --no-deps --no-build-isolation .
	rm -rf $(PURE_TESTS) && mkdir -p $(PURE_TESTS)
	cp -r tests examples deploy pyproject.toml $(PURE_TESTS)/ && ln -s $(CURDIR)/node_modules $(PURE_TESTS)/node_modules
	cd $(PURE_TESTS) && LIVETEMPLATE_NO_EXTENSIONS=1 $(CURDIR)/$(PURE) -m pytest tests/unit tests/integration -q -p no:cacheprovider \
		--cov=livetemplate --cov-report=term-missing:skip-covered

# Every benchmark: the micro benchmarks (pytest-benchmark), then the load runs of `perf`.
bench: build
	$(PY) -m pytest benchmarks --benchmark-columns=min,median,mean,rounds --benchmark-sort=name
	$(MAKE) --no-print-directory perf

# A release wheel for this machine: built from a clean tree with the compiled engine required,
# then repaired by auditwheel (manylinux tag, external libraries vendored) into dist/.
# cibuildwheel.toml builds the full matrix in CI.
wheel: $(DEPS) $(CLIENT)
	rm -rf build/wheel build/lib && mkdir -p build/wheel dist
	LIVETEMPLATE_BUILD_EXTENSIONS=required $(PY) -m pip wheel --quiet --no-deps --wheel-dir build/wheel .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m auditwheel repair --wheel-dir dist build/wheel/livetemplate-*.whl
BENCH_DEPS := $(VENV)/.bench-deps
$(BENCH_DEPS): $(DEPS)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The performance gates (docs/performance.md) with every gate counted: the compiled engine's
# speed-up over its twin against the stored one, then the quick load run (2,000 connections,
# this project beside the bare asyncio floor) against the M3 floor. About a minute.
perf-gate: build
	$(PY) -m pytest benchmarks/test_regression.py -q -p no:cacheprovider --benchmark-disable-gc
	$(PY) -m benchmarks.load --quick --gate --json perf-gate.json

# The side-by-side load runs (this project, the floor, pyview-web) at 2,000 and 10,000 connections.
perf: build $(BENCH_DEPS)
	$(PY) -m benchmarks.load --connections 2000 10000 --json perf.json

run: build
	$(PY) -m examples.todos

clean:
	rm -rf build dist *.egg-info $(PURE_TESTS) $(ENGINE) livetemplate/*.so livetemplate/static .pytest_cache .mypy_cache .ruff_cache
