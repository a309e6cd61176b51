"""LocAt on RoPE-ViT and on Jumbo reproduce the authors' reference outputs.

Fixtures: ``../shared/fixtures/locat{vit_rope,jumbo}_reference_small.pt`` (README there), loaded
through ``init_cfg=Pretrained`` from a file in the authors' (timm) key layout. Guards show the
fixtures can tell the families' defining choices apart: GAug on the un-rotated query (RoPE),
one jumbo MLP for every block (Jumbo).
"""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn

from conftest import SHARED

from locat_mm.layers import RoPELocAtAttention
from locat_mm.layers.rope import MixedRoPE
from locat_mm.models import LocAtJumbo, LocAtRoPEViT
from locat_mm.models.family_ckpt_convert import convert_jumbo_state_dict

FAMILIES = {'rope': ('locatvit_rope_reference_small.pt', LocAtRoPEViT),
            'jumbo': ('locatjumbo_reference_small.pt', LocAtJumbo)}


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(name, fixture dict, path of its state dict saved as an authors' checkpoint)."""
    path = osp.join(SHARED, 'fixtures', FAMILIES[request.param][0])
    if not osp.isfile(path):
        pytest.fail(f'reference fixture missing: {path} (set LOCAT_SHARED)')
    fixture = torch.load(path, weights_only=False)
    assert fixture['family'] == request.param
    checkpoint = tmp_path_factory.mktemp(request.param) / 'authors.pth'
    torch.save({'model': fixture['state_dict']}, checkpoint)
    return request.param, fixture, str(checkpoint)


def _arch(config: dict) -> dict:
    return dict(embed_dims=config['embed_dim'], num_layers=config['depth'],
                num_heads=config['num_heads'], feedforward_channels=4 * config['embed_dim'])


def _pretrained(name: str, fixture: dict, checkpoint: str, **kwargs) -> nn.Module:
    config = fixture['config']
    model = FAMILIES[name][1](
        arch=_arch(config), img_size=config['img_size'],
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint), **kwargs)
    model.init_weights()
    return model.eval()


def _worst_logit_error(model: nn.Module, fixture: dict) -> float:
    head_w, head_b = fixture['state_dict']['head.weight'], fixture['state_dict']['head.bias']
    worst = 0.
    for case in fixture['cases']:
        with torch.no_grad():
            (feature,) = model(case['input'])
        logits = feature @ head_w.T + head_b
        assert logits.shape == case['logits'].shape
        worst = max(worst, (logits - case['logits']).abs().max().item())
    return worst


def _worst_feature_error(model: nn.Module, fixture: dict) -> float:
    """Against the fixture's features; ``model`` built with ``_feature_model_args``."""
    worst = 0.
    for case in fixture['cases']:
        with torch.no_grad():
            feats = model(case['input'])
        assert len(feats) == len(case['features'])
        for got, want in zip(feats, case['features']):
            assert got.shape == want.shape
            worst = max(worst, (got - want).abs().max().item())
    return worst


def _feature_model_args(fixture: dict) -> dict:
    """Block outputs before the final norm, every prefix token dropped (SPEC section 3)."""
    return dict(out_type='featmap', out_indices=tuple(fixture['cases'][0]['feature_indices']),
                final_norm=False)


def test_logits_match_reference(family):
    name, fixture, checkpoint = family
    assert {tuple(c['input'].shape[2:]) for c in fixture['cases']} == \
        {(224, 224), (96, 160), (200, 264)}
    assert _worst_logit_error(_pretrained(name, fixture, checkpoint), fixture) < 1e-5


def test_features_match_reference(family):
    name, fixture, checkpoint = family
    model = _pretrained(name, fixture, checkpoint, **_feature_model_args(fixture))
    assert _worst_feature_error(model, fixture) < 1e-5


class _GAugOnRotatedQuery(RoPELocAtAttention):
    """The wrong order: GAug reads the query after RoPE has rotated it."""

    def forward(self, x, grid, num_prefix):
        B, L, C = x.shape
        q, k, v = self.split_heads(self.qkv(x))
        q, k = self.rope(q, k, grid, num_prefix)
        var, amp = self.gaug(q, grid, num_prefix)
        out = self._biased_attention(q, k, v, var, amp, grid, num_prefix, 0.)
        return self.gamma1(self.proj(out.transpose(1, 2).reshape(B, L, C)))


def test_rope_fixture_fails_when_gaug_reads_the_rotated_query(family):
    name, fixture, checkpoint = family
    if name != 'rope':
        pytest.skip('RoPE only')
    logits = _pretrained(name, fixture, checkpoint)
    features = _pretrained(name, fixture, checkpoint, **_feature_model_args(fixture))
    for model in (logits, features):
        for layer in model.layers:
            layer.attn.__class__ = _GAugOnRotatedQuery
    # The class token is never rotated and reads the patches through PRR: its logits move
    # less than the patches do, but both beyond the tolerance of the tests above.
    assert _worst_logit_error(logits, fixture) > 5e-5
    assert _worst_feature_error(features, fixture) > 5e-3


def test_jumbo_fixture_fails_when_the_jumbo_mlp_is_not_shared(family):
    """Blocks with jumbo MLPs of their own: the checkpoint's MLP then reaches the first block
    only, and the others keep their initialisation (trunc-normal 0.02, as the authors')."""
    name, fixture, checkpoint = family
    if name != 'jumbo':
        pytest.skip('Jumbo only')
    model = _pretrained(name, fixture, checkpoint)
    torch.manual_seed(0)
    own = [model.jumbo_mlp] + [copy.deepcopy(model.jumbo_mlp) for _ in model.layers[1:]]
    for mlp in own[1:]:
        for m in mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
    shared_run = model.run_layer
    model.run_layer = lambda layer, x, grid: layer(x, grid, 6, own[list(model.layers).index(
        layer)])
    assert _worst_logit_error(model, fixture) > 1e-3
    model.run_layer = shared_run
    assert _worst_logit_error(model, fixture) < 1e-5


def test_jumbo_converter_refuses_unshared_copies(family):
    name, fixture, _ = family
    if name != 'jumbo':
        pytest.skip('Jumbo only')
    state_dict = dict(fixture['state_dict'])
    converted = convert_jumbo_state_dict(state_dict)
    assert not any(k.startswith('layers.') and 'jumbo_mlp' in k for k in converted)
    state_dict['blocks.1.jumbo_mlp.fc2.bias'] = state_dict['jumbo_mlp.fc2.bias'] + 1
    with pytest.raises(ValueError, match='not the same tensor'):
        convert_jumbo_state_dict(state_dict)


def test_plain_twin_is_the_authors_plain_layout(family):
    """gaug=False, prr=False loads the authors' checkpoint without its LocAt keys, strictly:
    the plain twin has exactly the plain model's parameters."""
    name, fixture, checkpoint = family
    plain = {k: v for k, v in fixture['state_dict'].items()
             if '.gaug.' not in k and not k.startswith('norm_patches.')}
    path = osp.join(osp.dirname(checkpoint), 'plain.pth')
    torch.save({'model': plain}, path)
    model = _pretrained(name, fixture, path, gaug=False, prr=False)
    assert not hasattr(model, 'ln_patches') and not model.with_prr
    with pytest.raises(KeyError, match='gaug') as error:
        _pretrained(name, fixture, path)
    # The message names the family, which the keys alone do not tell.
    assert f'this {FAMILIES[name][1].__name__}, by its keys a LocAtViT' in str(error.value)


@pytest.mark.parametrize('cls', [LocAtRoPEViT, LocAtJumbo])
@pytest.mark.parametrize('arch,head_width,width', [('t', 64, 192), ('b', 64, 768)])
def test_parameter_delta_over_plain_twin(cls, arch, head_width, width):
    """GAug adds (2c + 2) + (c + 1) per block (c the head width); LocAtJumbo also its patch
    norm (2C)."""
    with torch.device('meta'):
        locat = sum(p.numel() for p in cls(arch=arch).parameters())
        plain = sum(p.numel() for p in cls(arch=arch, gaug=False, prr=False).parameters())
    expected = 12 * (3 * head_width + 3) + (2 * width if cls is LocAtJumbo else 0)
    assert locat - plain == expected
    assert 12 * (3 * head_width + 3) == 2340


def test_jumbo_mlp_is_one_set_of_weights():
    model = LocAtJumbo(arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                                 feedforward_channels=64), img_size=64)
    assert [k for k in model.state_dict() if 'jumbo_mlp' in k] == [
        'jumbo_mlp.layers.0.0.weight', 'jumbo_mlp.layers.0.0.bias', 'jumbo_mlp.layers.1.weight',
        'jumbo_mlp.layers.1.bias']


def test_rope_rotation_is_the_complex_product():
    """Re-derivation: pair (2m, 2m + 1) as z = a + ib is multiplied by exp(i theta_m), with
    theta_m = column * f_x[m] + row * f_y[m]; the prefix token is left as it is."""
    torch.manual_seed(0)
    rope = MixedRoPE(head_dims=8, num_heads=2)
    grid = (3, 4)
    q = torch.randn(1, 2, 1 + 12, 8)
    k = torch.randn(1, 2, 1 + 12, 8)
    got_q, got_k = rope(q, k, grid, num_prefix=1)
    for x, got in ((q, got_q), (k, got_k)):
        assert torch.equal(got[:, :, 0], x[:, :, 0])
        for h in range(2):
            for n in range(12):
                row, col = divmod(n, grid[1])
                for m in range(4):
                    theta = col * rope.freqs[0, h, m].item() + row * rope.freqs[1, h, m].item()
                    z = complex(x[0, h, 1 + n, 2 * m], x[0, h, 1 + n, 2 * m + 1])
                    z *= complex(math.cos(theta), math.sin(theta))
                    assert abs(got[0, h, 1 + n, 2 * m].item() - z.real) < 1e-5
                    assert abs(got[0, h, 1 + n, 2 * m + 1].item() - z.imag) < 1e-5


def test_rope_initial_frequencies():
    """RoPE-Mixed's init: per head, magnitudes 10^(-4k/c) along phi and phi + pi/2."""
    torch.manual_seed(0)
    freqs = MixedRoPE(head_dims=16, num_heads=3).freqs.detach()
    assert freqs.shape == (2, 3, 8)
    mags = torch.hypot(freqs[0], freqs[1])
    expected = 10.**(-torch.arange(0, 16, 4) / 16)
    torch.testing.assert_close(mags, torch.cat([expected, expected]).expand(3, 8))
    angles = torch.atan2(freqs[1], freqs[0])
    turn = torch.remainder(angles[:, 4:] - angles[:, :4], 2 * math.pi)
    torch.testing.assert_close(turn, torch.full_like(turn, math.pi / 2))


def test_jumbo_pos_embed_of_another_grid_is_resized_at_load(family):
    """A model built for 256 px reads the 224 px checkpoint: its 14 x 14 patch embedding is
    resized to 16 x 16 as timm does (bicubic, antialiased)."""
    name, fixture, checkpoint = family
    if name != 'jumbo':
        pytest.skip('Jumbo only')
    config = dict(fixture['config'], img_size=256)
    model = _pretrained(name, dict(fixture, config=config), checkpoint)
    grid = fixture['state_dict']['pos_embed'].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(grid, size=(16, 16), mode='bicubic',
                                           antialias=True).flatten(2).transpose(1, 2)
    torch.testing.assert_close(model.pos_embed.detach(), want, rtol=1e-5, atol=1e-6)


def test_own_classifier_checkpoint_loads_for_dense_features(family, tmp_path):
    """This project's classifier checkpoint (``backbone.`` keys, final norms) loads strictly
    into the linear probe's backbone (no final norms) and gives the reference features."""
    name, fixture, checkpoint = family
    source = _pretrained(name, fixture, checkpoint)
    path = str(tmp_path / 'classifier.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()}},
               path)
    model = _pretrained(name, fixture, path, **_feature_model_args(fixture))
    assert _worst_feature_error(model, fixture) < 1e-5
