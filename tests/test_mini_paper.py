"""tools/mini_paper.py on a tiny budget: both models, both stages, the JSON and the figure."""
import json
import os.path as osp

import numpy as np
import pytest
from demo_helpers import load_tool
from PIL import Image


@pytest.mark.slow
def test_tiny_run_writes_results_and_figure(tmp_path, capsys):
    mini_paper = load_tool('mini_paper')
    work_dir = str(tmp_path / 'mini')
    # Two worker processes: the pool, the per-run logs and the saved predictions are exercised.
    returned = mini_paper.main([
        '--work-dir', work_dir, '--seeds', '3', '--cls-iters', '2', '--probe-iters', '2',
        '--cls-images', '12', '6', '--seg-images', '6', '3', '--num-vis', '2', '--workers', '2'
    ])
    with open(osp.join(work_dir, 'results.json')) as f:
        results = json.load(f)
    assert results == returned
    assert set(results) == {'runs', 'minutes'} and results['minutes'] > 0
    assert sorted((r['model'], r['seed']) for r in results['runs']) == [('locat', 3), ('vit', 3)]
    for run in results['runs']:
        assert set(run) == {'model', 'seed', 'top1', 'miou'}
        assert 0 <= run['top1'] <= 100 and 0 <= run['miou'] <= 100
        # Each stage ran with mmengine's Runner and left its log and checkpoint.
        name = run['model']
        assert osp.isfile(osp.join(work_dir, 'seed3', f'{name}_cls', 'iter_2.pth'))
        assert osp.isfile(osp.join(work_dir, 'seed3', f'{name}_probe', 'iter_2.pth'))
    # The probe loaded the pretrained, frozen backbone: its weights are the pretraining's.
    import torch
    for name in ('vit', 'locat'):
        cls = torch.load(osp.join(work_dir, 'seed3', f'{name}_cls', 'iter_2.pth'),
                         map_location='cpu', weights_only=False)['state_dict']
        probe = torch.load(osp.join(work_dir, 'seed3', f'{name}_probe', 'iter_2.pth'),
                           map_location='cpu', weights_only=False)['state_dict']
        backbone = {k: v for k, v in probe.items() if k.startswith('backbone.')}
        assert backbone and all(torch.equal(v, cls[k]) for k, v in backbone.items())
        assert any('gaug' in k for k in backbone) == (name == 'locat')

    figure = np.array(Image.open(osp.join(work_dir, 'mini_paper.png')))
    # 2 validation images x 8 panels of 1.6 inches at 100 dpi.
    assert figure.shape[:2] == (320, 1280)
    assert figure.std() > 10  # not blank
    out = capsys.readouterr().out
    assert 'LocAtViT' in out and 'mean' in out and 'results.json' in out


def test_summary_table_mean_and_spread():
    mini_paper = load_tool('mini_paper')
    runs = [dict(model='vit', seed=s, top1=t, miou=m)
            for s, t, m in ((0, 80., 30.), (1, 82., 34.))] + [
                dict(model='locat', seed=0, top1=81., miou=40.)]
    table = mini_paper.summarise(runs)
    vit_mean = [line for line in table.splitlines() if line.startswith('ViT ') and 'mean' in line]
    # Sample standard deviation over seeds: top-1 sqrt(2), mIoU sqrt(8).
    assert vit_mean == ['ViT         mean  top-1 81.00 +- 1.41  mIoU 32.00 +- 2.83  (2 seeds)']
    assert 'LocAtViT    mean  top-1 81.00 +- -  mIoU 40.00 +- -  (1 seeds)' in table
