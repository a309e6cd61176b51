"""Each workaround in locat_mm/compat.py is still needed, and works.

Every check runs in a fresh interpreter twice: without ``import locat_mm`` it must fail (when it
stops failing, upstream has fixed the problem and the workaround can go), with it it must pass.
"""
import socket
import subprocess
import sys
import textwrap

import pytest
import torch


def run_python(code: str, with_locat: bool, env: dict = None) -> subprocess.CompletedProcess:
    prologue = 'import locat_mm\n' if with_locat else ''
    return subprocess.run([sys.executable, '-c', prologue + textwrap.dedent(code)],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=120)


@pytest.mark.skipif(torch.cuda.is_available(), reason='the workaround is for CPU-only machines')
def test_cpu_process_group_initialises(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    import os
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port))
    code = """
        from mmengine.dist import init_dist, get_world_size
        init_dist('pytorch', backend='gloo')
        print('world', get_world_size())
    """
    without = run_python(code, with_locat=False, env=env)
    assert without.returncode != 0 and 'NVIDIA driver' in without.stderr
    fixed = run_python(code, with_locat=True, env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert 'world 1' in fixed.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason='the workaround is for CPU-only machines')
def test_amp_optim_wrapper_on_cpu():
    code = """
        import torch
        from mmengine.optim import AmpOptimWrapper
        model = torch.nn.Linear(4, 2)
        wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        with wrapper.optim_context(model):
            out = model(torch.randn(3, 4))
        wrapper.update_params(out.float().sum())
        print(out.dtype)
    """
    without = run_python(code, with_locat=False)
    assert without.returncode != 0 and 'only available training on gpu' in without.stderr
    fixed = run_python(code, with_locat=True)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip().endswith('torch.bfloat16')
