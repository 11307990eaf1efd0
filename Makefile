# The two commands of the README. Each creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv test-deps lint bench

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

lint: test-deps
	$(BIN)/ruff check scrutiny tests bench
	$(BIN)/ruff format --check scrutiny tests bench
	$(BIN)/mypy

# Two workers (the machines have two cores); whole files per worker, so the engine servers a
# module starts once are not started again on the other worker.
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: venv
	$(BIN)/python bench/ingest.py
