# Two commands a newcomer needs: `make run` and `make test` (both idempotent).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASET ?= breast

.PHONY: run test install install-dev lint clean-store

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make a second `make run` skip the install unless pyproject.toml changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: install into .venv, train on the breast cancer data, print what to open next
run: install
	$(BIN)/anomigan train --dataset $(DATASET)
	@$(BIN)/anomigan models
	@echo
	@echo "Next: $(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}"
	@echo "      then open http://127.0.0.1:5000 (experiment 'anomigan', Models tab)"

## test: install the dev extra; lint, check the format, the layers and the types; run the whole test suite
test: install-dev
	$(BIN)/ruff check anomigan entrypoints tests bench
	$(BIN)/ruff format --check anomigan entrypoints tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check anomigan entrypoints tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff format --check anomigan entrypoints tests bench
