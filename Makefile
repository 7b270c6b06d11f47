# Taskdeck: `make run` opens Taskdeck, `make test` runs the whole suite headless.
# Both set up .venv from nothing but a Python 3.11+ interpreter.

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
PYTHON_FOR_VENV := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: run test bench lint typecheck clean venv

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON_FOR_VENV)" || { echo "Taskdeck needs Python 3.11 or newer on PATH." >&2; exit 1; }
	$(PYTHON_FOR_VENV) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

venv: $(VENV)/.installed

run: venv
	@echo "Taskdeck: the window is not built yet; starting the headless worker on the default database."
	@echo "Use '$(BIN)/taskdeck --help' in another terminal to submit and watch tasks. Ctrl+C stops it."
	$(BIN)/taskdeck worker

test: venv
	$(BIN)/python -m pytest -p no:cacheprovider -q

bench: venv
	$(BIN)/python -m tests.bench.run_all

lint: venv
	$(BIN)/ruff check core tests
	$(BIN)/ruff format --check core tests
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
