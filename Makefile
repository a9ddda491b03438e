# Two commands: `make dev` starts the whole stack; `make test` runs every test. Both install what they need from
# the locks in requirements/ (pinned, with hashes): `make dev` what running needs, `make test` everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_INSTALLED := $(VENV)/.runtime-installed
DEV_INSTALLED := $(VENV)/.dev-installed
NODE_INSTALLED := tests/compat/node_modules/.installed
# Each lock keeps the pins it has unless pyproject.toml asks otherwise; `make lock LOCK_FLAGS=--upgrade` moves
# every pin to the newest release allowed. Each lock is constrained by the one before, so they agree.
LOCK_FLAGS ?=
COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)

.PHONY: dev test lint install bench openapi lock clean

dev: $(RUNTIME_INSTALLED)
	$(BIN)/jobs-service dev

test: $(DEV_INSTALLED) $(NODE_INSTALLED)
	$(BIN)/pytest

bench: $(DEV_INSTALLED)
	$(BIN)/jobs-service bench --record

# After changing the API: the OpenAPI document tests/integration/test_openapi.py compares with the served one.
openapi: $(DEV_INSTALLED)
	$(BIN)/jobs-service openapi --output docs/openapi.json

lint: $(DEV_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(DEV_INSTALLED) $(NODE_INSTALLED)

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

clean:
	rm -rf $(VENV) tests/compat/node_modules .jobs-data
