"""Installing locat_mm into an environment that has its own torch replaces nothing.

A cluster user has a torch build of their own (here torch 2.13.0, not the 2.14.1 of the lock
file). ``pip install --no-deps`` must leave every installed package as it was, ``pip check``
must name only the requirements that are really missing (never torch: its version is in
range), and the torch-only parts of the package must work there.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

OTHER_TORCH = '2.13.0'


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                            cwd='/')
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _freeze(python: str) -> dict:
    lines = _run(python, '-m', 'pip', 'list', '--format=freeze').stdout.splitlines()
    return dict(line.lower().split('==', 1) for line in lines if '==' in line)


def _canonical(name: str) -> str:
    # PEP 503: pip names a project with runs of -_. as one '-' (huggingface_hub is
    # huggingface-hub in pip check's report).
    return re.sub(r'[-_.]+', '-', name).lower()


def _requirement_names(path: str) -> set:
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return {_canonical(re.split(r'[<>=!~;\[ ]', line)[0]) for line in lines if line}


@pytest.mark.slow
def test_no_deps_install_keeps_the_users_torch(tmp_path):
    venv = str(tmp_path / 'venv')
    _run(sys.executable, '-m', 'venv', venv)  # no system site packages
    python = osp.join(venv, 'bin', 'python')
    # --no-compile: byte-compiling torch's modules is two thirds of its install time.
    _run(python, '-m', 'pip', 'install', '-q', '--no-compile', f'torch=={OTHER_TORCH}')
    before = _freeze(python)
    assert before['torch'].startswith(OTHER_TORCH)

    # From a copy: building in place would leave build/ and *.egg-info in the checkout.
    source = str(tmp_path / 'source')
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'work_dirs', 'data', 'build', '*.egg-info', '__pycache__'))
    _run(python, '-m', 'pip', 'install', '-q', '--no-compile', '--no-deps', '--no-build-isolation',
         source)
    after = _freeze(python)
    added = {name: after[name] for name in after.keys() - before.keys()}
    assert set(added) == {'locat-mm'} or set(added) == {'locat_mm'}, added
    assert {k: after[k] for k in before} == before, 'pip changed installed packages'

    # pip check: exactly the runtime requirements that are not installed, torch not among them.
    report = _run(python, '-m', 'pip', 'check', check=False).stdout
    flagged = set(re.findall(r'^locat[-_]mm [^ ]+ requires ([A-Za-z0-9_.-]+)', report, re.M))
    wanted = _requirement_names(osp.join(REPO, 'requirements', 'runtime.txt'))
    missing = wanted - {_canonical(name) for name in after}
    assert {_canonical(name) for name in flagged} == missing, report
    assert 'torch' not in missing and 'has requirement' not in report, report

    # The torch-only parts work on that torch (no OpenMMLab package installed).
    code = ('import torch, locat_mm; from locat_mm.ops import dense_biased_attention; '
            'from locat_mm.layers import LocAtAttention; '
            'print(torch.__version__, locat_mm.__version__)')
    out = _run(python, '-c', code).stdout
    assert out.startswith(OTHER_TORCH), out
