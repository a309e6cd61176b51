"""The authors' reference outputs are reproduced through the project's loading path."""
import pytest
import torch

from locat_mm import LocAtViT


def _arch(config: dict) -> dict:
    return dict(
        embed_dims=config['embed_dim'],
        num_layers=config['depth'],
        num_heads=config['num_heads'],
        feedforward_channels=4 * config['embed_dim'])


@pytest.fixture(scope='module')
def timm_checkpoint(reference_fixture, tmp_path_factory):
    """The fixture's weights saved as an authors' (timm-layout) checkpoint file."""
    path = tmp_path_factory.mktemp('ckpt') / 'locatvit_reference_small.pth'
    torch.save({'model': reference_fixture['state_dict']}, path)
    return str(path)


def _pretrained(fixture: dict, checkpoint: str, **kwargs) -> LocAtViT:
    config = fixture['config']
    model = LocAtViT(
        arch=_arch(config),
        img_size=config['img_size'],
        patch_size=config['patch_size'],
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        **kwargs)
    model.init_weights()
    return model.eval()


def test_logits_match_reference(reference_fixture, timm_checkpoint):
    model = _pretrained(reference_fixture, timm_checkpoint, out_type='cls_token')
    head_w = reference_fixture['state_dict']['head.weight']
    head_b = reference_fixture['state_dict']['head.bias']
    worst = 0.0
    for case in reference_fixture['cases']:
        with torch.no_grad():
            (cls,) = model(case['input'])
        logits = cls @ head_w.T + head_b
        assert logits.shape == case['logits'].shape
        worst = max(worst, (logits - case['logits']).abs().max().item())
    assert worst < 1e-5, worst


def test_features_match_reference(reference_fixture, timm_checkpoint):
    indices = tuple(reference_fixture['cases'][0]['feature_indices'])
    # Dense features are taken before the final norm (SPEC section 3).
    model = _pretrained(
        reference_fixture,
        timm_checkpoint,
        out_type='featmap',
        out_indices=indices,
        final_norm=False)
    for case in reference_fixture['cases']:
        with torch.no_grad():
            feats = model(case['input'])
        assert len(feats) == len(case['features'])
        for got, want in zip(feats, case['features']):
            assert got.shape == want.shape
            assert (got - want).abs().max().item() < 1e-5


def test_reference_output_changes_without_gaug_weights(reference_fixture, timm_checkpoint):
    """Guards the tests above: the fixture depends on GAug well beyond their tolerance."""
    model = _pretrained(reference_fixture, timm_checkpoint, out_type='cls_token')
    for layer in model.layers:
        layer.attn.gaug = None
    head_w = reference_fixture['state_dict']['head.weight']
    head_b = reference_fixture['state_dict']['head.bias']
    for case in reference_fixture['cases']:
        with torch.no_grad():
            logits = model(case['input'])[0] @ head_w.T + head_b
        assert (logits - case['logits']).abs().max() > 1e-4
