# The two commands of the README: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench schema screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shotflow validate pipelines/*.yaml
	$(BIN)/shotflow run pipelines/demo.yaml --backend preview

test: $(STAMP)
	$(BIN)/pytest -q

# the chaos tests (random SIGKILLs of the real CLI); `make test` leaves them out
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# the browser test (Debian's Chromium) writes the README's pictures of the Prefect UI to docs/
screenshots: $(STAMP)
	SHOTFLOW_SCREENSHOTS=docs $(BIN)/pytest -q tests/test_browser.py

bench: $(STAMP)
	$(BIN)/python bench/bench_generation.py
	$(BIN)/python bench/bench_assembly.py
	$(BIN)/python bench/bench_run.py

schema: $(STAMP)
	$(BIN)/shotflow schema -o storyboard.schema.json

clean:
	rm -rf $(VENV) out .pytest_cache
