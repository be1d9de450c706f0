# The two commands: `make run` (the station) and `make test` (the whole suite). Both install what
# they need first and are safe to repeat.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AXE_VERSION := 4.10.3
AXE := .cache/axe/node_modules/axe-core/axe.min.js

.PHONY: run test system-run system-test venv path lint typecheck pytest bench clean

# The whole station: dock daemon, processing workers and web UI, supervised (`evidence station`).
run: system-run venv path
	deploy/start-redis.sh
	$(BIN)/evidence station

# `evidence` on PATH: as root a link in /usr/local/bin (never over a file that is not such a link);
# otherwise say how.
path: venv
	@target="$(CURDIR)/$(BIN)/evidence"; link=/usr/local/bin/evidence; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "evidence is $$target: add $(CURDIR)/$(BIN) to PATH, or run 'make path' as root"; \
	elif [ -e "$$link" ] && [ ! -L "$$link" ]; then \
		echo "$$link exists and is not a link: left alone; evidence is $$target"; \
	else \
		ln -sfn "$$target" "$$link"; \
	fi

test: system-test venv
	deploy/start-redis.sh
	$(MAKE) lint typecheck pytest

system-run:
	deploy/install-system-packages.sh run

system-test:
	deploy/install-system-packages.sh test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

# pytest exits 5 when it collected no test: make treats that as the failure it is.
pytest: $(AXE)
	$(BIN)/pytest

# axe-core, from the npm registry, for the accessibility test of the web pages (tests/e2e/test_accessibility.py)
$(AXE):
	npm install --no-save --no-audit --no-fund --prefix .cache/axe axe-core@$(AXE_VERSION)

# Each benchmark prints its table; figures measured are in bench/RESULTS.md.
bench: venv
	$(BIN)/python bench/bench_store_write.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_audit_verify.py
	$(BIN)/python bench/bench_proxy.py
	$(BIN)/python bench/bench_pipeline_workers.py
	$(BIN)/python bench/bench_linking.py
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_retention_plan.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
