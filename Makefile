# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck browser wrk bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/mlcanary demo

# Two workers: most of the suite waits on real servers and rollout intervals. A module's
# tests stay on one worker (they share its trained models).
test: $(STAMP) browser lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadscope

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Browser tests drive Debian's Chromium (Playwright's own download cannot be used here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not installed and not root: browser tests will skip (fail under CI=true)"; fi; }

# The serving benchmarks drive the servers with Debian's wrk.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk not installed and not root: install it (apt-get install wrk)"; exit 1; fi; }

bench: $(STAMP) wrk
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/log_cost.py
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/drift.py

clean:
	rm -rf $(VENV) .mlcanary .pytest_cache .mypy_cache .ruff_cache
