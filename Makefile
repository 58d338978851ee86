# Lerax: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest docs install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/pyright

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=10

# The site (mkdocs-material, API reference by mkdocstrings), built offline and
# strictly: a broken link or reference, or a docstring griffe warns about, fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

test: lint typecheck pytest docs

# gymnax 1.0.1 pins gymnasium<1.4 (our reference is 1.4), so the peers of the
# `bench` extra are installed without their dependencies, which come first.
BENCH_DEPS := flax==0.12.8 matplotlib seaborn attrs wrapt decorator gast six toolz
BENCH_NODEPS := gymnax==1.0.1 rejax==0.1.3 distrax==0.1.9 chex==0.1.92 \
	tfp-nightly==0.26.0.dev20261027 dm-tree==0.1.10

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet $(BENCH_DEPS)
	$(BIN)/python -m pip install --quiet --no-deps $(BENCH_NODEPS)
	$(BIN)/python bench/env_throughput.py
	$(BIN)/python bench/callback_validation.py
	$(BIN)/python bench/logging_overhead.py
	$(BIN)/python bench/linear_layout.py
	$(BIN)/python bench/ppo_cartpole.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
