"""The classification configs are known to mmpretrain (and mim) by name: configs/metafile.yml."""
import os.path as osp

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
    assert all('Weights' not in m and m['Metadata']['Weights Published'] is False
               for m in models.values())


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

    # Weights of your own (none are published) load by name through the safe loader.
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
