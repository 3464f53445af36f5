# opsloop: every target sets up .venv when it is missing and is quick when it is there.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DB ?= ./opsloop.duckdb

.PHONY: demo test bench serve lint integration-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Real Prometheus, node exporter, Alertmanager, NATS and Chromium for the integration tests (Debian packages).
integration-deps:
	@if ! command -v prometheus >/dev/null \
	    || ! { command -v prometheus-alertmanager || command -v alertmanager; } >/dev/null \
	    || ! { command -v prometheus-node-exporter || command -v node_exporter; } >/dev/null \
	    || ! command -v nats-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends prometheus prometheus-node-exporter prometheus-alertmanager \
	      nats-server >/dev/null ) \
	  || echo "integration-deps: could not install prometheus/alertmanager/nats-server from apt; integration tests will skip"; \
	fi
# headless Chromium for the status page test (tests/integration/test_status_chromium.py)
	@if ! { command -v chromium || command -v chromium-browser; } >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null ) \
	  || echo "integration-deps: could not install chromium from apt; the status page browser test will skip"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) integration-deps lint
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/opsloop demo

NAB ?= ../shared/benchmarks/nab
NEZHA ?= ../shared/benchmarks/rca/nezha
LOGHUB ?= ../shared/benchmarks/loghub

bench: $(STAMP)
	$(BIN)/opsloop bench ingest
	$(BIN)/opsloop bench detect
	$(BIN)/opsloop bench e2e
	$(BIN)/opsloop bench incidents
	$(BIN)/opsloop bench correlation
	$(BIN)/opsloop bench slo
	$(BIN)/opsloop bench diagnose
	@if [ -d $(NAB) ]; then $(BIN)/opsloop bench nab --data $(NAB); else echo "NAB data not at $(NAB): set NAB=path"; fi
	@if [ -d $(NEZHA) ]; then $(BIN)/opsloop bench rca --data $(NEZHA); else echo "Nezha data not at $(NEZHA): set NEZHA=path"; fi
	@if [ -d $(LOGHUB) ]; then $(BIN)/opsloop bench logs --data $(LOGHUB); else echo "Loghub data not at $(LOGHUB): set LOGHUB=path"; fi

serve: $(STAMP)
	$(BIN)/opsloop serve --db $(DB)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
