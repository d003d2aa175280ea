# Quick start: `make demo` (install, then the demo) and `make test` (install, then the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lagless-installed

.PHONY: install demo test lint bench-minatar bench-throughput clean

install: $(STAMP)

# torch first and pinned: the CPU build of 2.13.0 is served here; an unpinned torch pulls CUDA.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[minatar,mujoco,ald,ray,nlp,explain,dev]"
	touch $(STAMP)

demo: install
	$(BIN)/lagless demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks

bench-minatar: install
	$(BIN)/python -m pip install --quiet -e ".[minatar,bench]"
	$(BIN)/python benchmarks/minatar_delay.py

bench-throughput: install
	$(BIN)/python -m pip install --quiet -e ".[minatar,bench]"
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
