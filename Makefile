# The two commands of the README. Each creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv test-deps lint layers-target bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e .

demo: venv
	$(BIN)/scrutiny demo

test-deps: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,spark]'
	bash scripts/test-setup.sh

# Import contracts (pyproject.toml): no upward import between layers, no cycle, imports inside
# functions included; and no test module imports another.
lint: test-deps
	$(BIN)/ruff check scrutiny tests bench scripts
	$(BIN)/ruff format --check scrutiny tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python scripts/check_test_imports.py

# What still breaks the target import contracts (scripts/import-contracts-target.toml).
layers-target: test-deps
	$(BIN)/lint-imports --no-cache --no-logo scripts/import-contracts-target.toml

# Two workers (the machines have two cores); whole files per worker, so the engine servers a
# module starts once are not started again on the other worker.
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: venv
	$(BIN)/python bench/ingest.py
