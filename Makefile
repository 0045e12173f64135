# Lightbulb developer entry points. Every target sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint bench system-deps clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $@

# Debian packages the tests start for real: clickhouse-server for the cluster
# backend, chromium and its driver for the dashboard's browser tests, systemd's
# systemd-analyze for the unit file's checks.
system-deps:
	@{ test -x /usr/sbin/clickhouse-server && command -v chromium >/dev/null 2>&1 \
	  && command -v chromedriver >/dev/null 2>&1 \
	  && command -v systemd-analyze >/dev/null 2>&1; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive \
	  $$SUDO apt-get install -y clickhouse-server chromium chromium-driver systemd; }

# The main job on the embedded default: the daemon on the demo config, beside a demo worker.
# Ports: make demo LIGHTBULB_PORT=9090 DEMO_WORKER_PORT=9099
demo: $(STAMP)
	BIN=$(BIN) examples/run-demo.sh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
