# The two entry points the README gives a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint

$(BIN)/modelreg: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build that lies on disk; the project's range admits it, so nothing larger is pulled.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: $(BIN)/modelreg node_modules/.package-lock.json

demo: setup
	MODELREG_HOME=$${MODELREG_HOME:-$(CURDIR)/.modelreg} $(BIN)/modelreg demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
