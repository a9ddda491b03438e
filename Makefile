# Two commands: `make dev` starts the whole stack; `make test` runs every test. Both install what they need from
# the locks in requirements/ (pinned, with hashes): `make dev` what running needs, `make test` everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_INSTALLED := $(VENV)/.runtime-installed
DEV_INSTALLED := $(VENV)/.dev-installed
NODE_INSTALLED := tests/compat/node_modules/.installed
PROMTOOL := $(BIN)/promtool
CHROMIUM := /usr/bin/chromium
# Each lock keeps the pins it has unless pyproject.toml asks otherwise; `make lock LOCK_FLAGS=--upgrade` moves
# every pin to the newest release allowed. Each lock is constrained by the one before, so they agree.
LOCK_FLAGS ?=
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: dev test lint install bench openapi lock clean

dev: $(RUNTIME_INSTALLED)
	$(BIN)/jobs-service dev

test: $(DEV_INSTALLED) $(NODE_INSTALLED) $(PROMTOOL) $(CHROMIUM)
	$(BIN)/pytest

bench: $(DEV_INSTALLED)
	$(BIN)/jobs-service bench --record --history --rebuild-events 1000000

# After changing the API: the OpenAPI document tests/integration/test_openapi.py compares with the served one.
openapi: $(DEV_INSTALLED)
	$(BIN)/jobs-service openapi --output docs/openapi.json

lint: $(DEV_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(DEV_INSTALLED) $(NODE_INSTALLED) $(PROMTOOL) $(CHROMIUM)

lock: $(BIN)/uv
	$(COMPILE) -o requirements/base.lock
	$(COMPILE) --extra embedded -c requirements/base.lock -o requirements/runtime.lock
	$(COMPILE) --extra dev -c requirements/runtime.lock -o requirements/dev.lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# uv as dev.lock pins it once `make test` ran; before the first lock exists, any release.
$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install --quiet "uv>=0.9"

# The project itself goes in without dependencies: the lock has them all (pip refuses one it lacks a hash of).
$(RUNTIME_INSTALLED): requirements/runtime.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/runtime.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(DEV_INSTALLED): requirements/dev.lock $(RUNTIME_INSTALLED)
	$(BIN)/pip install --quiet -r requirements/dev.lock
	touch $@

$(NODE_INSTALLED): tests/compat/package.json tests/compat/package-lock.json
	npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error
	touch $@

# promtool (tests/integration/test_observability_config.py checks deploy/prometheus with it): the one on PATH if
# there is one, else the binary alone out of Debian's `prometheus` package (installing the package would start a
# Prometheus server and pull in its web assets).
$(PROMTOOL): | $(BIN)/python
	@if command -v promtool >/dev/null; then ln -sf "$$(command -v promtool)" $@; else \
		dir=$$(mktemp -d) && cd $$dir && \
		{ apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && \
		mv usr/bin/promtool $(abspath $@) && cd / && rm -rf $$dir; fi
	$@ --version | head -1

# The browser the dashboard's tests drive (Playwright cannot download its own here): Debian's, installed as root
# (as CI runs) when missing.
$(CHROMIUM):
	@export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	$@ --version

clean:
	rm -rf $(VENV) tests/compat/node_modules .jobs-data
