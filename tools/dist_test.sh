#!/usr/bin/env bash
# Multi-process testing (torchrun):
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Environment as tools/dist_train.sh: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON.
exec "$(dirname "$0")/dist_run.sh" test.py "$3" "$1" "$2" --launcher pytorch "${@:4}"
