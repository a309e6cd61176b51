#!/usr/bin/env bash
# The CUDA check of the GAug attention, sized for a short GPU lease (< 8 minutes).
#
#   tools/gpu_check.sh --prepare DIR   on a CPU machine with network: downloads into DIR the
#                                      cp312 wheels the check needs besides torch, triton and
#                                      pytest (mmengine, mmcv-lite, mmpretrain and their
#                                      dependencies), to travel with the tree to a GPU node
#                                      without network.
#   tools/gpu_check.sh [--wheels DIR] [--out FILE]
#                                      on the GPU machine (Python 3.12, CUDA torch >= 2.5,
#                                      triton, pytest): installs the wheels into a temporary
#                                      venv over the system's packages, runs the CUDA tests
#                                      (tests/test_cuda.py and the CUDA test of
#                                      tests/test_fast_path.py) and the CUDA
#                                      benchmark (ViT-B, AMP bf16, 224 px x 128 and 512 px x 8,
#                                      LocAtViT vs ViT), prints a table, writes FILE (JSON).
#   tools/gpu_check.sh --dry [--out FILE]
#                                      the same steps on the CPU with a tiny model and no
#                                      wheels (the CUDA tests skip): checks the script itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="$ROOT/.gpu_wheels"
OUT="$ROOT/gpu_check.json"
MODE=gpu
# Packages the tests import besides torch (pure Python, or with cp312 wheels on PyPI).
PACKAGES=(mmengine mmcv-lite mmpretrain)

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prepare) MODE=prepare; WHEELS="$(realpath -m "$2")"; shift 2 ;;
    --wheels) WHEELS="$(realpath -m "$2")"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    --dry) MODE=dry; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $MODE == prepare ]]; then
  mkdir -p "$WHEELS"
  "$PYTHON" -m pip download --dest "$WHEELS" --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform any "${PACKAGES[@]}"
  echo "gpu_check.sh: wheels for Python 3.12 in $WHEELS; copy it with the tree."
  exit 0
fi

cd "$ROOT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [[ $MODE == gpu ]]; then
  "$PYTHON" -c 'import sys, torch; assert torch.cuda.is_available(), "no CUDA device"; \
    print("gpu_check.sh:", torch.cuda.get_device_name(), "torch", torch.__version__, \
    "python", sys.version.split()[0])'
  if ! "$PYTHON" -c 'import mmpretrain' 2>/dev/null; then
    [[ -d $WHEELS ]] || { echo "gpu_check.sh: no $WHEELS; run --prepare DIR first" >&2; exit 1; }
    # A venv over the system's packages: pip keeps the installed torch and numpy.
    if "$PYTHON" -m venv --system-site-packages "$WORK/venv" 2>/dev/null; then
      "$WORK/venv/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" \
        "${PACKAGES[@]}"
      PYTHON="$WORK/venv/bin/python"
    else  # no venv module: a private folder after the system's packages
      "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" --target "$WORK/site" \
        "${PACKAGES[@]}"
      export PYTHONPATH="$PYTHONPATH:$WORK/site"
    fi
  fi
  BENCH=(--device cuda --amp bf16 --arch base --img-size 224 512 --repeats 5 --warmup 3)
  TESTS=(tests/test_cuda.py tests/test_fast_path.py::test_flex_on_cuda)
else
  TINY='{"embed_dims": 32, "num_layers": 2, "num_heads": 2, "feedforward_channels": 64}'
  BENCH=(--device cpu --arch "$TINY" --img-size 64 --batch-size 1 --repeats 1 --warmup 0
         --threads 1)
  TESTS=(tests/test_cuda.py)
fi

start=$(date +%s)
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider --junitxml "$WORK/tests.xml" "${TESTS[@]}"
tests_rc=$?
set -e
"$PYTHON" tools/benchmark.py "${BENCH[@]}" --json "$WORK/bench.json"
"$PYTHON" - "$WORK/tests.xml" "$WORK/bench.json" "$OUT" "$MODE" "$tests_rc" "$start" <<'PY'
import json, sys, time
import xml.etree.ElementTree as ET
xml, bench, out, mode, rc, start = sys.argv[1:]
suite = ET.parse(xml).getroot()
suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
cases = []
for case in suite.iter('testcase'):
    status = 'passed'
    for tag in ('failure', 'error', 'skipped'):
        if case.find(tag) is not None:
            status = {'failure': 'failed', 'error': 'error', 'skipped': 'skipped'}[tag]
    cases.append(dict(name=case.get('name'), status=status, seconds=float(case.get('time', 0))))
print(f"{'test':64s} {'status':8s} seconds")
for c in cases:
    print(f"{c['name'][:64]:64s} {c['status']:8s} {c['seconds']:.1f}")
report = dict(mode=mode, tests_exit_code=int(rc), tests=cases, benchmark=json.load(open(bench)),
              wall_seconds=round(time.time() - float(start), 1))
with open(out, 'w') as f:
    json.dump(report, f, indent=2)
print(f'gpu_check.sh: {mode} mode, {report["wall_seconds"]} s, report in {out}')
PY
exit "$tests_rc"
