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

# The main job on the embedded defaults (a devnet and an IPFS blockstore under $(DEMO_HOME)):
# train the tiny model, register every checkpoint, verify the last one, print the audit history.
# --resume makes a second `make demo` continue (or just re-check) the same run instead of failing.
DEMO_HOME ?= $(CURDIR)/.modelreg
MODELREG := $(BIN)/modelreg --home $(DEMO_HOME)

demo: setup
	$(MODELREG) train-and-register --preset tiny --model demo-gpt --resume
	$(MODELREG) verify $$(ls $(DEMO_HOME)/runs/demo-gpt/ckpt-*[0-9].safetensors | tail -n 1) --model demo-gpt
	$(MODELREG) audit history demo-gpt
	$(MODELREG) audit report demo-gpt --format html -o $(DEMO_HOME)/demo-gpt-report.html
	$(MODELREG) devnet down  # the chain stays on disk; any later command starts it again

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
