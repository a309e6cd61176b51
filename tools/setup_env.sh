#!/usr/bin/env bash
# Creates the project's virtual environment (default .venv) with the exact tested set of
# packages (requirements/lock.txt) and installs locat_mm into it in editable mode, without
# letting pip change that set. Idempotent: a second run only checks.
#
# mmcv 2.1.0 ships on PyPI as source only. A prebuilt wheel is taken, in this order, from
# $LOCAT_WHEELS, ../shared/wheels and the per-user cache ~/.cache/locat_mm/wheels when its tags
# match this Python and machine; otherwise it is built from source once (about 35 minutes on two
# cores, with CUDA kernels when nvcc and a GPU are present) and kept in that cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
CACHE="${LOCAT_WHEEL_CACHE:-$HOME/.cache/locat_mm/wheels}"
LOCK="$ROOT/requirements/lock.txt"
locked() { sed -n "s/^$1==//p" "$LOCK"; }
MMCV_VERSION="$(locked mmcv)"
TORCH_VERSION="$(locked torch)"

log() { printf '[setup_env] %s\n' "$*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "$PYTHON not found: install CPython 3.11 or set PYTHON=/path/to/python3.11"
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

with_cuda=0
if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 \
        && nvidia-smi -L >/dev/null 2>&1; then
    with_cuda=1
fi

# Torch first: mmcv's wheel is tied to its exact version, and the build below compiles against it.
"${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$(locked torchvision)" \
    "setuptools==$(locked setuptools)" wheel "ninja==$(locked ninja)"

# The fused CPU kernels need only torch and ninja: they compile (about 40 s) on another core
# while pip installs the rest, instead of in the first test or training run.
"$PY" "$ROOT/tools/build_kernels.py" >/dev/null &
kernels_job=$!

mkdir -p "$CACHE"
pytag="cp$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
plat="linux_$(uname -m)"
wheel_name="mmcv-$MMCV_VERSION-$pytag-$pytag-$plat.whl"

find_mmcv_wheel() {
    local dir
    for dir in ${LOCAT_WHEELS:-} "$ROOT/../shared/wheels" "$CACHE"; do
        if [ -f "$dir/$wheel_name" ]; then
            # A CPU-only wheel is no good on a CUDA machine: mmcv.ops would lack the GPU kernels.
            if [ "$with_cuda" = 1 ] && [ "$dir" != "$CACHE" ]; then
                continue
            fi
            echo "$dir"
            return 0
        fi
    done
    return 1
}

build_mmcv_wheel() {
    local work
    work="$(mktemp -d)"
    log "no matching mmcv $MMCV_VERSION wheel: building from source in $work (about 35 min on 2 cores)"
    "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
        "mmcv==$MMCV_VERSION" -d "$work"
    tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 asks for C++14/17.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
        "$work/mmcv-$MMCV_VERSION/setup.py"
    (cd "$work/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA="$with_cuda" \
        MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel -q --no-build-isolation --no-deps \
        -w "$CACHE" .)
    rm -rf "$work"
}

if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
    wheel_dir="$(find_mmcv_wheel)" || { build_mmcv_wheel; wheel_dir="$CACHE"; }
    log "installing mmcv from $wheel_dir/$wheel_name"
    [ "$wheel_dir" = "$CACHE" ] || cp -f "$wheel_dir/$wheel_name" "$CACHE/"
    "${PIP[@]}" --no-deps "$CACHE/$wheel_name"
fi

# The lock file pins every package (setuptools included: openxlab would otherwise pull 60).
"${PIP[@]}" -r "$LOCK" --find-links "$CACHE" --only-binary mmcv
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
# mim reads the model index next to the installed metadata, which an editable install keeps
# away from the code: link the package there (tools/link_mim_index.py says why).
"$PY" "$ROOT/tools/link_mim_index.py"
"$PY" -c "import locat_mm, mmseg.models, mmpretrain.models, mmcv.ops" \
    || { log "the environment is incomplete: see the error above"; exit 1; }
wait "$kernels_job" || log "the fused CPU kernels did not build (message above): the slower" \
    "ATen path will be used"
log "ready: $VENV"
