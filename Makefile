# The two commands of the README: `make run` and `make test`. Everything else is set up
# on the way: the virtualenv, Python and npm packages, the compiled engine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps
ENGINE := livetemplate/.engine-built
CLIENT := livetemplate/static/livetemplate-client.browser.js

.DEFAULT_GOAL := test
.PHONY: run test lint typecheck check bench client build clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEPS): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(CLIENT): package.json package-lock.json scripts/fetch-client
	scripts/fetch-client

$(ENGINE): $(DEPS) livetemplate/_render_py.py ext/_render_c.pxd livetemplate/_frames_py.py ext/_frames_c.pxd setup.py
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

test: build check
	$(PY) -m pytest

bench: build
	$(PY) -m pytest benchmarks --benchmark-columns=min,median,mean,rounds --benchmark-sort=name

run: build
	$(PY) -m examples.todos

clean:
	rm -rf build dist *.egg-info $(ENGINE) livetemplate/*.so livetemplate/static .pytest_cache .mypy_cache .ruff_cache
