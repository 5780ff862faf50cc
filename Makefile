# `make run` starts the whole service on embedded defaults, `make test` runs the tests,
# `make lint` checks what CI checks before them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,test]'
	touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/personyze-sync dev

# pytest exit 5 (no tests collected) fails like any other non-zero exit, and says so.
test: $(STAMP_TEST)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: a failure" >&2; fi; \
	exit $$rc

# In CI's order, stopping at the first that fails: lint rules, formatting, types (strict on
# app/core and workers), the import layers contract; all configured in pyproject.toml.
lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP_TEST)
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)
	$(BIN)/python -m bench.sync $(BENCH_ARGS)
	$(BIN)/python -m bench.memory $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache .import_linter_cache
