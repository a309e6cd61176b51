#!/usr/bin/env bash
# Multi-process training on one or more nodes (torchrun):
#   tools/dist_train.sh CONFIG GPUS [train.py args]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON (the
# repo's .venv/bin/python if present, else python). Without CUDA, GPUS CPU processes train
# with gloo (tools/train.py adapts the config).
exec "$(dirname "$0")/dist_run.sh" train.py "$2" "$1" --launcher pytorch "${@:3}"
