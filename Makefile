# The two commands: `make run` and `make test`. Both do the whole set-up on a
# fresh Debian/Ubuntu machine and are fast on a second run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DB ?= zendo
TEST_DB ?= zendo_test
export ZENDO_DATABASE_URL ?= postgresql:///$(DB)

.PHONY: run test setup venv services browser kernels db test-db lint typecheck bench clean

run: setup db
	$(BIN)/zendo serve

test: setup test-db
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

setup: venv services browser kernels

# Reinstall only when pyproject.toml changes.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml core/__init__.py dispatch/__init__.py gateway/__init__.py matching/__init__.py zendo/__init__.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || ./scripts/ensure-python-venv.sh $(PYTHON) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

services:
	./scripts/ensure-services.sh

# The matching kernels, compiled into numba's on-disk cache (seconds when it is current).
kernels: venv
	$(BIN)/zendo warmup

# Debian's chromium, for the ops console's browser tests.
browser:
	./scripts/ensure-chromium.sh

db: venv services
	./scripts/ensure-db.sh $(DB)
	ZENDO_DATABASE_URL=postgresql:///$(DB) $(BIN)/zendo migrate

test-db: venv services
	./scripts/ensure-db.sh $(TEST_DB)
	ZENDO_DATABASE_URL=postgresql:///$(TEST_DB) $(BIN)/zendo migrate

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy core dispatch gateway matching zendo benchmarks tests

bench: setup db
	$(BIN)/python -m benchmarks.bench_matching

clean:
	rm -rf $(VENV) .zendo .pytest_cache
