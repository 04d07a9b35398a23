# The two commands of the README: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo bytecode lint test test-slow bench schema screenshots clean cluster-demo cluster-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,team]'
	touch $(STAMP)

# pip compiles the packages it installs, not this checkout (installed editable): with
# PYTHONDONTWRITEBYTECODE set, as on our CI machines, every command would compile shotflow's
# modules again (about 0.2 s of each start). Quick when nothing changed.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q shotflow flows tasks deployments

demo: $(STAMP) bytecode
	$(BIN)/shotflow validate pipelines/*.yaml
	$(BIN)/shotflow run pipelines/demo.yaml --backend preview

# ruff (lint and format), then the layering contracts of [tool.importlinter] in pyproject.toml. import-linter reads
# packages from disk, where the shell (flows/, tasks/, deployments/) sits beside shotflow/, so it
# reads a copy laid out as installed (the shell inside shotflow/, which is made a regular package
# there so that the checkout's own shotflow/ is not read as a second portion of it).
lint: $(STAMP) bytecode
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	@tree=$$(mktemp -d) && trap 'rm -rf "$$tree"' EXIT && \
	  cp -R shotflow "$$tree/shotflow" && touch "$$tree/shotflow/__init__.py" && \
	  for shell in flows tasks deployments; do cp -R $$shell "$$tree/shotflow/$$shell"; done && \
	  cd "$$tree" && $(CURDIR)/$(BIN)/lint-imports --no-cache $(CURDIR)/pyproject.toml

# two test processes (pytest-xdist): the tests mostly wait on the servers and runs they start
test: lint
	$(BIN)/pytest -q -n 2

# the chaos tests (random SIGKILLs of the real CLI); `make test` leaves them out
test-slow: $(STAMP) bytecode
	$(BIN)/pytest -q -m slow

# the browser test (Debian's Chromium) writes the README's pictures of the Prefect UI to docs/
screenshots: $(STAMP)
	SHOTFLOW_SCREENSHOTS=docs $(BIN)/pytest -q tests/test_browser.py tests/test_review_browser.py

bench: $(STAMP) bytecode
	$(BIN)/python bench/bench_generation.py
	$(BIN)/python bench/bench_assembly.py
	$(BIN)/python bench/bench_run.py
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_team.py

# a team's cluster on this machine (tests/cluster.py): a Prefect server, Redis, an S3 endpoint (moto), the fake
# fal server, a work pool and two workers; renders the three storyboards of tests/fixtures/cluster (sharing 4
# shots), prints where the videos are and keeps running (pid file .shotflow/cluster/cluster.pid)
cluster-demo: $(STAMP)
	$(BIN)/python tests/cluster.py up

cluster-down:
	$(BIN)/python tests/cluster.py down

schema: $(STAMP)
	$(BIN)/shotflow schema -o storyboard.schema.json

clean:
	rm -rf $(VENV) out .pytest_cache
	find shotflow flows tasks deployments tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
