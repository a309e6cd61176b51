"""``tools/gpu_check.sh --dry``: the GPU check's steps, end to end, on the CPU."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.slow
def test_dry_mode_runs_end_to_end(tmp_path):
    out = tmp_path / 'gpu_check.json'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run([osp.join(REPO, 'tools', 'gpu_check.sh'), '--dry', '--out', str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['mode'] == 'dry' and report['tests_exit_code'] == 0
    names = {case['name'].split('[')[0] for case in report['tests']}
    assert {'test_auto_path_matches_dense_fp32', 'test_amp_training_step_close_to_fp32',
            'test_compilations_bounded_over_five_sizes'} <= names
    (row, ) = report['benchmark']['results']
    assert row['img_size'] == 64 and row['train_time_ratio'] > 0
    assert 'test_compilations_bounded_over_five_sizes' in proc.stdout  # the printed table


def test_unknown_argument_is_refused():
    proc = subprocess.run([osp.join(REPO, 'tools', 'gpu_check.sh'), '--bogus'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and 'unknown argument --bogus' in proc.stderr
