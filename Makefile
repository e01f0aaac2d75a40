# The two entry points the README gives a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup go-binaries chromium demo test lint

$(BIN)/modelreg: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# One pinned torch everywhere. These machines have no CPU wheel on disk, so PyPI's Linux build (with CUDA,
	# several GB) comes once and pip's cache serves it again; the project's range admits it, so nothing else is pulled.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# geth and Kubo, the real daemons the tests start, built once per machine from the Go module proxy
# into the gitignored .cache/bin; a binary already there at the right version is kept.
GOBIN_DIR := $(CURDIR)/.cache/bin
GETH_VERSION := 1.17.10
KUBO_VERSION := 0.42.0
KUBO_SRC := $(CURDIR)/.cache/kubo-src
KUBO_LOG := $(CURDIR)/.cache/kubo-build.log

go-binaries:
	@mkdir -p $(GOBIN_DIR)
	@$(GOBIN_DIR)/geth version 2>/dev/null | grep -qx 'Version: $(GETH_VERSION)-stable' \
		|| GOBIN=$(GOBIN_DIR) go install github.com/ethereum/go-ethereum/cmd/geth@v$(GETH_VERSION)
	@# Kubo's go.mod has an exclude block, which `go install pkg@version` refuses: it is built as the
	@# main module inside a writable copy of its downloaded module (the module cache is read-only).
	@# About 2.5 CPU-minutes; skipped when the binary already reports $(KUBO_VERSION).
	@test "$$($(GOBIN_DIR)/ipfs version --number 2>/dev/null)" = $(KUBO_VERSION) \
		|| { dir="$$(go mod download -json github.com/ipfs/kubo@v$(KUBO_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p')" \
			&& [ -n "$$dir" ] && rm -rf $(KUBO_SRC) && cp -r "$$dir" $(KUBO_SRC) && chmod -R u+w $(KUBO_SRC) \
			&& (cd $(KUBO_SRC) && go build -trimpath -o $(GOBIN_DIR)/ipfs.partial ./cmd/ipfs) >$(KUBO_LOG) 2>&1 \
			&& mv $(GOBIN_DIR)/ipfs.partial $(GOBIN_DIR)/ipfs \
			&& test "$$($(GOBIN_DIR)/ipfs version --number)" = $(KUBO_VERSION); } \
		|| { tail -n 5 $(KUBO_LOG) 2>/dev/null; echo "error: Kubo $(KUBO_VERSION) was not built (log: $(KUBO_LOG))"; exit 1; }

# Debian's chromium renders the HTML audit report in the browser test (driven by npm's playwright-core).
# Installed as root when absent; without it that test skips, except under CI, where it fails.
chromium:
	@command -v chromium >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "warning: chromium is missing and only root can apt-get install it; the browser test will skip (fail under CI)"

setup: $(BIN)/modelreg node_modules/.package-lock.json go-binaries chromium

# The main job on the embedded defaults (a devnet and an IPFS blockstore under $(DEMO_HOME)):
# train the tiny model, register every checkpoint, verify the last one, print the audit history,
# replay the last version's training on the CPU, and write the HTML audit report.
# --resume makes a second `make demo` continue (or just re-check) the same run instead of failing.
DEMO_HOME ?= $(CURDIR)/.modelreg
MODELREG := $(BIN)/modelreg --home $(DEMO_HOME)

demo: setup
	$(MODELREG) train-and-register --preset tiny --model demo-gpt --resume
	$(MODELREG) verify $$(ls $(DEMO_HOME)/runs/demo-gpt/ckpt-*[0-9].safetensors | tail -n 1) --model demo-gpt
	$(MODELREG) audit history demo-gpt
	$(MODELREG) audit replay demo-gpt  # re-execute the last version's steps on the CPU: REPRODUCED, or the step that diverged
	$(MODELREG) audit report demo-gpt --format html -o $(DEMO_HOME)/demo-gpt-report.html
	$(MODELREG) devnet down  # the chain stays on disk; any later command starts it again

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
