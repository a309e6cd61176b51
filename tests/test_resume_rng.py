"""Exact resume with randomness on (RNGStateHook): a run killed with SIGKILL after a checkpoint
and resumed ends with the weights of the uninterrupted run, dropout and drop path on."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import project_config
from demo_helpers import DEMO_CONFIG, REPO, load_tool, make_tiny_data, tiny_run_options

from locat_mm.checkpoint import load_checkpoint
from locat_mm.engine.rng_hook import capture_rng_state, restore_rng_state

ITERS = 6


def test_state_round_trip():
    """Restoring a captured state repeats every generator's draws."""
    import random
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]


def _options(data_root: str, work_dir: str):
    # Heads' dropout stays at the config's 0.1; drop path on in the backbone.
    return tiny_run_options(data_root, iters=ITERS, checkpoint_interval=2) + [
        'model.backbone.drop_path_rate=0.2', f'experiment_name={osp.basename(work_dir)}',
        f'visualizer.name={work_dir}'
    ]


def _train_in_process(data_root: str, work_dir: str, *extra: str) -> None:
    # One thread, as the killed subprocess: reductions split over threads round differently.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_tool('train').main([DEMO_CONFIG, '--work-dir', work_dir, *extra, '--cfg-options',
                                 *_options(data_root, work_dir)])
    finally:
        torch.set_num_threads(threads)


def _train_killed_after_first_checkpoint(data_root: str, work_dir: str) -> None:
    """tools/train.py in a subprocess, killed with SIGKILL once a checkpoint is complete."""
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), DEMO_CONFIG, '--work-dir',
           work_dir, '--cfg-options', *_options(data_root, work_dir)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    # mmengine writes last_checkpoint after the checkpoint file itself.
    marker = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + 240
    while not osp.isfile(marker) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f'the run ended before it was killed: {err[-2000:]}'
    assert osp.isfile(marker), 'no checkpoint before the kill'


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path):
    data_root = make_tiny_data(str(tmp_path / 'data'))
    straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
    _train_in_process(data_root, straight)
    _train_killed_after_first_checkpoint(data_root, killed)
    resumed_from = open(osp.join(killed, 'last_checkpoint')).read().strip()
    assert not resumed_from.endswith(f'iter_{ITERS}.pth')
    assert 'rng_states' in load_checkpoint(resumed_from)
    _train_in_process(data_root, killed, '--resume')

    want = load_checkpoint(osp.join(straight, f'iter_{ITERS}.pth'))['state_dict']
    got = load_checkpoint(osp.join(killed, f'iter_{ITERS}.pth'))['state_dict']
    assert want.keys() == got.keys()
    diff = max((want[k].double() - got[k].double()).abs().max().item() for k in want)
    print(f'max weight difference after kill and resume: {diff}')
    assert diff == 0, f'resumed run differs from the uninterrupted one by up to {diff}'


@pytest.mark.slow  # reads every config with its bases (once per session: conftest)
def test_every_config_has_the_hook():
    """Every config of this project, through its bases, stores RNG states in checkpoints."""
    import glob
    configs = sorted(path for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                                recursive=True)
                     if '_base_' not in path.split(osp.sep))
    assert len(configs) > 50
    missing = [
        osp.basename(path) for path in configs
        if not any(h.get('type') == 'RNGStateHook' for h in project_config(path).get(
            'custom_hooks', []))
    ]
    assert not missing, f'configs without RNGStateHook: {missing}'
