# The project's entry points. `make test` is what CI runs (.ci/run).
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1

.PHONY: env demo test test-fast bench gpu-check gpu-check-prepare

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

# On a GPU machine (Python 3.12, CUDA torch, triton, pytest): CUDA tests + CUDA benchmark.
gpu-check:
	bash tools/gpu_check.sh

# On a CPU machine with network: the wheels gpu-check needs, into .gpu_wheels/.
gpu-check-prepare:
	bash tools/gpu_check.sh --prepare .gpu_wheels
