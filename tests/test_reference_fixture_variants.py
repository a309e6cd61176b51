"""The authors' RegViT (4 registers) and no-position-embedding LocAtViTs are reproduced.

Fixtures: ``../shared/fixtures/locatvit_{reg4,nopos}_reference_small.pt`` (README there), loaded
through ``init_cfg=Pretrained`` from a file in the authors' (timm) key layout.
"""
import os.path as osp

import pytest
import torch

from conftest import SHARED

from locat_mm import LocAtViT

VARIANTS = {
    'reg4': dict(num_register_tokens=4),
    'nopos': dict(with_pos_embed=False),
}


@pytest.fixture(scope='module', params=sorted(VARIANTS))
def variant(request, tmp_path_factory):
    """(name, fixture dict, path of its state dict saved as an authors' checkpoint)."""
    path = osp.join(SHARED, 'fixtures', f'locatvit_{request.param}_reference_small.pt')
    if not osp.isfile(path):
        pytest.fail(f'reference fixture missing: {path} (set LOCAT_SHARED)')
    fixture = torch.load(path, weights_only=False)
    checkpoint = tmp_path_factory.mktemp(request.param) / 'authors.pth'
    torch.save({'model': fixture['state_dict']}, checkpoint)
    return request.param, fixture, str(checkpoint)


def _pretrained(name: str, fixture: dict, checkpoint: str, **kwargs) -> LocAtViT:
    config = fixture['config']
    model = LocAtViT(
        arch=dict(
            embed_dims=config['embed_dim'],
            num_layers=config['depth'],
            num_heads=config['num_heads'],
            feedforward_channels=4 * config['embed_dim']),
        img_size=config['img_size'],
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        **VARIANTS[name],
        **kwargs)
    model.init_weights()
    return model.eval()


def _logits(model: LocAtViT, fixture: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        (cls,) = model(x)
    return cls @ fixture['state_dict']['head.weight'].T + fixture['state_dict']['head.bias']


def test_logits_match_reference(variant):
    name, fixture, checkpoint = variant
    model = _pretrained(name, fixture, checkpoint, out_type='cls_token')
    for case in fixture['cases']:
        logits = _logits(model, fixture, case['input'])
        assert logits.shape == case['logits'].shape
        assert (logits - case['logits']).abs().max().item() < 1e-5


def test_features_match_reference(variant):
    name, fixture, checkpoint = variant
    indices = tuple(fixture['cases'][0]['feature_indices'])
    model = _pretrained(
        name, fixture, checkpoint, out_type='featmap', out_indices=indices, final_norm=False)
    for case in fixture['cases']:
        with torch.no_grad():
            feats = model(case['input'])
        assert len(feats) == len(case['features'])
        for got, want in zip(feats, case['features']):
            assert got.shape == want.shape
            assert (got - want).abs().max().item() < 1e-5


def test_keys_are_the_authors(variant):
    """Registers load as ``reg_token`` and the no-pos model has no ``pos_embed`` at all."""
    name, fixture, checkpoint = variant
    model = _pretrained(name, fixture, checkpoint)
    if name == 'reg4':
        torch.testing.assert_close(model.reg_token, fixture['state_dict']['reg_token'])
        assert model.pos_embed.shape == fixture['state_dict']['pos_embed'].shape
    else:
        assert model.pos_embed is None and 'pos_embed' not in model.state_dict()


def test_reference_depends_on_the_registers(variant):
    """Guards the tests above: the registers' values matter well beyond their tolerance."""
    name, fixture, checkpoint = variant
    if name != 'reg4':
        pytest.skip('registers only')
    model = _pretrained(name, fixture, checkpoint)
    model.reg_token.data.zero_()
    case = fixture['cases'][0]
    assert (_logits(model, fixture, case['input']) - case['logits']).abs().max() > 1e-4
