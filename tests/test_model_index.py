"""The classification configs are known to mmpretrain (and mim) by name: configs/metafile.yml."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO

import locat_mm  # noqa: F401  (registers the model index)

METAFILE = osp.join(REPO, 'configs', 'metafile.yml')


def metafile_models() -> dict:
    with open(METAFILE) as f:
        return {m['Name']: m for m in yaml.safe_load(f)['Models']}


def test_every_classification_config_is_listed():
    import glob
    models = metafile_models()
    listed = {m['Config'] for m in models.values()}
    classification = {
        osp.relpath(path, REPO)
        for path in glob.glob(osp.join(REPO, 'configs', '*.py'))
        if "'mmpretrain'" in open(path).read() or '_in1k' in path or '_in100' in path
    }
    assert listed == classification
    # The authors' releases (the only published weights) are named by the two entries
    # they belong to; every other entry names none.
    released = {name: m['Weights'] for name, m in models.items() if 'Weights' in m}
    assert released == {'locat-vit-t-p16_in1k': 'hf-hub:sinahmr/locatvit_tiny',
                        'locat-vit-b-p16_in1k': 'hf-hub:sinahmr/locatvit_base'}
    assert all(m['Metadata']['Weights Published'] is (name in released)
               for name, m in models.items())


def test_list_models_knows_them():
    from mmpretrain import list_models
    assert set(list_models('*locat*')) == set(metafile_models())


def test_get_model_and_inference_by_name(tmp_path):
    from mmengine.registry import DefaultScope
    # A Runner earlier in the session may have left another toolbox's scope as the default,
    # which mmpretrain's inferencer would build its pipeline in.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        check_get_model_and_inference(tmp_path)


def check_get_model_and_inference(tmp_path):
    from mmpretrain import get_model, inference_model
    locat = get_model('locat-vit-t-p16_in1k')
    baseline = get_model('locat-baseline-vit-t-p16_in1k')
    assert type(locat.backbone).__name__ == type(baseline.backbone).__name__ == 'LocAtViT'
    assert any('.gaug.' in n for n, _ in locat.named_parameters())
    assert not any('.gaug.' in n for n, _ in baseline.named_parameters())

    # Weights of your own load by name through the safe loader.
    torch.manual_seed(0)
    for p in locat.parameters():
        p.data.normal_(0, 0.02)
    path = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': locat.state_dict()}, path)
    loaded = get_model('locat-vit-t-p16_in1k', pretrained=path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 locat.state_dict().values()))
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    result = inference_model('locat-vit-t-p16_in1k', image, pretrained=path)
    assert 0 <= result['pred_label'] < 1000 and np.isfinite(result['pred_score'])


@pytest.mark.parametrize('name', sorted(metafile_models()))
def test_config_paths_resolve(name):
    from mmpretrain.apis import ModelHub
    assert osp.samefile(ModelHub.get(name).config.filename,
                        osp.join(REPO, metafile_models()[name]['Config']))


def test_mim_search_in_an_editable_install(tmp_path):
    """mim finds a package's model index next to its installed metadata; an editable install
    keeps that metadata in site-packages, away from the code, until tools/link_mim_index.py
    links the package there."""
    site = tmp_path / 'site-packages'
    dist = site / 'locat_mm-0.1.0.dist-info'
    dist.mkdir(parents=True)
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: locat_mm\nVersion: 0.1.0\n')
    (dist / 'top_level.txt').write_text('locat_mm\n')
    (dist / 'direct_url.json').write_text(json.dumps(
        {'dir_info': {'editable': True}, 'url': f'file://{REPO}'}))
    env = dict(os.environ, PYTHONPATH=str(site))  # this "site-packages" first, as installed
    mim = [osp.join(osp.dirname(sys.executable), 'mim'), 'search', 'locat_mm']

    def search() -> subprocess.CompletedProcess:
        return subprocess.run(mim, capture_output=True, text=True, env=env, timeout=600,
                              cwd=str(tmp_path))

    before = search()
    assert before.returncode != 0
    assert f'{site}/locat_mm/model-index.yml' in before.stderr + before.stdout
    link = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'link_mim_index.py'),
                           '--site', str(site)], capture_output=True, text=True, timeout=120)
    assert link.returncode == 0, link.stderr
    assert osp.samefile(site / 'locat_mm', osp.join(REPO, 'locat_mm'))
    after = search()
    assert after.returncode == 0, after.stderr[-2000:]
    assert 'locat-vit-b-p16_in1k' in after.stdout and 'hf-hub:sinahmr/locatvit_base' in after.stdout
