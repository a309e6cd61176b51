"""The authors' LocAtSwin is reproduced through the project's loading paths.

Fixture: ``../shared/fixtures/locatswin_reference_small.pt`` (README there): seeded weights in
the authors' (timm) layout, the classifier's logits and the four stage outputs (before the final
norm) for one 224 x 224 batch.
"""
import importlib.util
import os.path as osp

import pytest
import torch

from conftest import REPO, SHARED

from locat_mm.layers.window_attention import WindowLocAtAttention
from locat_mm.models import LocAtSwin

FIXTURE = osp.join(SHARED, 'fixtures', 'locatswin_reference_small.pt')


@pytest.fixture(scope='module')
def swin_fixture():
    if not osp.isfile(FIXTURE):
        pytest.fail(f'reference fixture missing: {FIXTURE} (set LOCAT_SHARED)')
    return torch.load(FIXTURE, weights_only=False)


@pytest.fixture(scope='module')
def timm_checkpoint(swin_fixture, tmp_path_factory):
    """The fixture's weights saved as the authors' training saves them."""
    path = tmp_path_factory.mktemp('ckpt') / 'locatswin_reference_small.pth'
    torch.save({'model': swin_fixture['state_dict'], 'epoch': 299}, path)
    return str(path)


def _arch(config: dict) -> dict:
    return dict(embed_dims=config['embed_dim'], depths=list(config['depths']),
                num_heads=list(config['num_heads']))


def _pretrained(fixture: dict, checkpoint: str, **kwargs) -> LocAtSwin:
    config = fixture['config']
    model = LocAtSwin(
        arch=_arch(config),
        img_size=config['img_size'],
        patch_size=config['patch_size'],
        window_size=config['window_size'],
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        **kwargs)
    model.init_weights()
    return model.eval()


def _logits(model: LocAtSwin, fixture: dict, x: torch.Tensor) -> torch.Tensor:
    """Average pooling and the fixture's linear head on the backbone's (PRR-refined) map."""
    with torch.no_grad():
        (featmap, ) = model(x)
    state = fixture['state_dict']
    return featmap.mean(dim=(2, 3)) @ state['head.fc.weight'].T + state['head.fc.bias']


def test_logits_match_reference(swin_fixture, timm_checkpoint):
    model = _pretrained(swin_fixture, timm_checkpoint)
    for case in swin_fixture['cases']:
        logits = _logits(model, swin_fixture, case['input'])
        assert logits.shape == case['logits'].shape
        assert (logits - case['logits']).abs().max().item() < 1e-5


def test_stage_features_match_reference(swin_fixture, timm_checkpoint):
    # Every stage, before the final norm: no output norms, no PRR.
    model = _pretrained(swin_fixture, timm_checkpoint, out_indices=(0, 1, 2, 3), norm_cfg=None,
                        prr=False)
    for case in swin_fixture['cases']:
        assert tuple(case['feature_indices']) == (0, 1, 2, 3)
        with torch.no_grad():
            feats = model(case['input'])
        for got, want in zip(feats, case['features'], strict=True):
            assert got.shape == want.shape
            assert (got - want).abs().max().item() < 1e-5


def test_reference_depends_on_gaug_and_prr(swin_fixture, timm_checkpoint):
    """Guards the tests above: without GAug, or without PRR, the logits move well beyond
    their tolerance."""
    case = swin_fixture['cases'][0]
    without_prr = _pretrained(swin_fixture, timm_checkpoint, prr=False)
    assert (_logits(without_prr, swin_fixture, case['input']) - case['logits']).abs().max() > 1e-3
    without_gaug = _pretrained(swin_fixture, timm_checkpoint)
    for module in without_gaug.modules():
        if isinstance(module, WindowLocAtAttention):
            module.gaug = None
    assert (_logits(without_gaug, swin_fixture, case['input']) -
            case['logits']).abs().max() > 1e-3


def test_converter_tool_gives_the_reference_classifier(swin_fixture, timm_checkpoint, tmp_path):
    """tools/model_converters/locat_swin_timm2mm.py: an mmpretrain ImageClassifier loads the
    result strictly and reproduces the logits."""
    from mmengine.runner import load_checkpoint
    from mmpretrain.models import ImageClassifier
    spec = importlib.util.spec_from_file_location(
        'locat_swin_timm2mm', osp.join(REPO, 'tools', 'model_converters', 'locat_swin_timm2mm.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    dst = str(tmp_path / 'converted.pth')
    assert tool.main([timm_checkpoint, dst]) == 0
    meta = torch.load(dst, weights_only=True)['meta']
    assert (meta['gaug'], meta['embed_dims'], meta['depths'], meta['num_classes']) == \
        (True, 32, [2, 2, 2, 2], 10)
    config = swin_fixture['config']
    classifier = ImageClassifier(
        backbone=dict(type='LocAtSwin', arch=_arch(config), window_size=config['window_size']),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=256))
    load_checkpoint(classifier, dst, strict=True)
    classifier.eval()
    case = swin_fixture['cases'][0]
    with torch.no_grad():
        logits = classifier(case['input'], mode='tensor')
    assert (logits - case['logits']).abs().max().item() < 1e-5
    # Not a Swin, or a Swin with parts LocAtSwin does not have: refused with the reason.
    other = tmp_path / 'vit.pth'
    torch.save({'blocks.0.norm1.weight': torch.ones(1)}, other)
    assert tool.main([str(other), str(tmp_path / 'x.pth')]) == 1
    with_ape = dict(swin_fixture['state_dict'], absolute_pos_embed=torch.zeros(1, 3136, 32))
    torch.save(with_ape, other)
    assert tool.main([str(other), str(tmp_path / 'x.pth')]) == 1
    assert not osp.exists(tmp_path / 'x.pth')
