# Two commands: `make dev` starts the whole stack; `make test` runs every test. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := tests/compat/node_modules/.installed

.PHONY: dev test lint install bench openapi clean

dev: $(INSTALLED)
	$(BIN)/jobs-service dev

test: $(INSTALLED) $(NODE_INSTALLED)
	$(BIN)/pytest

bench: $(INSTALLED)
	$(BIN)/jobs-service bench --record

# After changing the API: the OpenAPI document tests/integration/test_openapi.py compares with the served one.
openapi: $(INSTALLED)
	$(BIN)/jobs-service openapi --output docs/openapi.json

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(INSTALLED) $(NODE_INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(NODE_INSTALLED): tests/compat/package.json tests/compat/package-lock.json
	npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) tests/compat/node_modules .jobs-data
