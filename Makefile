# The project's entry points. `make test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1

.PHONY: env demo test test-fast bench

env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/demo.py

test: env
	$(PY) -m pytest tests -q -ra

test-fast: env
	$(PY) -m pytest tests -q -ra -m "not slow"

bench: env
	$(PY) tools/benchmark.py
