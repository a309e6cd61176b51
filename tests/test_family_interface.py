"""LocAtRoPEViT and LocAtJumbo follow the interface layer every backbone follows.

Bad arguments are refused before anything is built, with errors catchable as upstream's and
naming the argument (``interface.py``); ``init_cfg`` entries leave GAug at the authors' start
(``pretrained.init_backbone``); the grid GAug was trained on travels with the weights
(``gaug_base_grid``) and ``load_state_dict`` reads the authors' layouts (the family adapters
as load pre-hooks).
"""
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn

from conftest import SHARED

from locat_mm.errors import ArgumentError, ArgumentTypeError
from locat_mm.layers.gaug import GaussianAugmentation
from locat_mm.models import LocAtJumbo, LocAtRoPEViT
from locat_mm.models.ckpt_convert import GAUG_GRID_KEY
from locat_mm.models.family_ckpt_convert import (adapt_jumbo_state_dict,
                                                 adapt_ropevit_state_dict)

FAMILIES = (LocAtRoPEViT, LocAtJumbo)
SMALL = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)

# (arguments, the name the message must give, the error class)
BAD_ARGUMENTS = [
    (dict(out_type='tokens'), 'out_type', ArgumentError),
    (dict(arch='huge'), 'huge', ArgumentError),
    (dict(arch=dict(embed_dims=32)), 'num_layers', ArgumentError),
    (dict(drop_path_rate=1.5), 'drop_path_rate', ArgumentError),
    (dict(drop_rate=-0.1), 'drop_rate', ArgumentError),
    (dict(attn_drop_rate='0.1'), 'attn_drop_rate', ArgumentTypeError),
    (dict(gaug='yes'), 'gaug', ArgumentTypeError),
    (dict(prr=1), 'prr', ArgumentTypeError),
    (dict(patch_size=0), 'patch_size', ArgumentError),
    (dict(in_channels=2.5), 'in_channels', ArgumentTypeError),
    (dict(img_size=(224, 224, 3)), 'img_size', ArgumentError),
    (dict(img_size=230), 'patch_size', ArgumentError),
    (dict(out_indices=5), 'out_indices', ArgumentError),
    (dict(out_indices='-1'), 'out_indices', ArgumentTypeError),
    (dict(init_cfg=dict(type='Normal'), pretrained='x.pth'), 'pretrained', ArgumentError),
]


@pytest.mark.parametrize('cls', FAMILIES)
@pytest.mark.parametrize('kwargs,name,error', BAD_ARGUMENTS,
                         ids=[f'{case[1]}-{i}' for i, case in enumerate(BAD_ARGUMENTS)])
def test_bad_arguments_are_refused_as_upstream_refuses_them(cls, kwargs, name, error):
    """Catchable as upstream's ``AssertionError`` and as ``ValueError``/``TypeError``."""
    kwargs = dict(dict(arch=SMALL), **kwargs)
    with pytest.raises(AssertionError, match=name) as info:
        cls(**kwargs)
    assert isinstance(info.value, error)
    assert isinstance(info.value, ValueError if error is ArgumentError else TypeError)


def test_jumbo_refuses_no_class_token():
    with pytest.raises(ValueError, match='num_class_tokens'):
        LocAtJumbo(arch=SMALL, num_class_tokens=0)


@pytest.mark.parametrize('cls', FAMILIES)
def test_arch_names_are_the_authors_sizes(cls):
    """'s' is the authors' small (DeiT-S: 384 wide, 12 blocks, 6 heads), not mmpretrain's
    ViT 's' (768 wide, 8 blocks)."""
    with torch.device('meta'):
        model = cls(arch='S')
    assert (model.embed_dims, model.num_layers, model.num_heads) == (384, 12, 6)
    assert model.layers[0].ffn.layers[0][0].out_features == 1536


@pytest.mark.parametrize('cls', FAMILIES)
def test_pretrained_argument_is_mmsegs(cls):
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = cls(arch=SMALL, img_size=64, pretrained='ckpt.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='ckpt.pth')


@pytest.mark.parametrize('cls', FAMILIES)
def test_init_cfg_entries_leave_gaug_at_the_authors_start(cls):
    """An entry written for a toolbox's Linear layers does not reach GAug's maps: a query at 0
    gets variance 1 and amplitude softplus(0) = log 2 (SPEC section 1), while the entry did
    set the other Linear layers."""
    model = cls(arch=SMALL, img_size=64,
                init_cfg=[dict(type='Constant', layer='Linear', val=0.5, bias=0.3)])
    model.init_weights()
    assert torch.all(model.layers[0].attn.qkv.bias == 0.3)
    gaugs = [m for m in model.modules() if isinstance(m, GaussianAugmentation)]
    assert len(gaugs) == SMALL['num_layers']
    for gaug in gaugs:
        var, amp = gaug(torch.zeros(1, SMALL['num_heads'], 16, 16), (4, 4))
        torch.testing.assert_close(var, torch.ones_like(var))
        torch.testing.assert_close(amp, torch.full_like(amp, math.log(2.)))


def _gaug_grids(model: nn.Module) -> set:
    return {m.base_grid for m in model.modules() if isinstance(m, GaussianAugmentation)}


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)[0]


@pytest.mark.parametrize('cls', FAMILIES)
@pytest.mark.parametrize('how', ['init_cfg', 'load_state_dict'])
def test_gaug_grid_travels_with_the_weights(cls, how, tmp_path):
    """A 224-built model's checkpoint in a model built for 512 gives, at 512, the 224-built
    model's features: GAug runs on the 14 x 14 grid it was trained on (RoPE's angles and
    Jumbo's position embedding, resized at load as at run time, follow the grid anyway)."""
    torch.manual_seed(0)
    # Layer scale 1 and Linear weights of std 0.2: at the authors' start (layer scale 1e-5,
    # std 0.02) the attention branch, GAug's bias with it, hardly reaches the features.
    args = dict(arch=SMALL, out_type='featmap', final_norm=False, layer_scale_init_value=1.)
    source = cls(img_size=224, init_cfg=dict(type='Normal', layer='Linear', std=0.2), **args)
    source.init_weights()
    for module in source.modules():
        if isinstance(module, GaussianAugmentation):
            # A trained amplitude: the bias shapes the attention (softplus(0) at the start).
            nn.init.constant_(module.log_alpha.bias, 5.)
    x = torch.randn(1, 3, 512, 512)
    want = _features(source, x)
    path = str(tmp_path / 'source.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()}},
               path)
    if how == 'init_cfg':
        model = cls(img_size=512, init_cfg=dict(type='Pretrained', checkpoint=path), **args)
        model.init_weights()
    else:
        model = cls(img_size=512, **args)
        model.load_state_dict(source.state_dict())
    assert _gaug_grids(model) == {(14, 14)}
    assert model.state_dict()[GAUG_GRID_KEY].tolist() == [14, 14]
    torch.testing.assert_close(_features(model, x), want, rtol=1e-5, atol=1e-5)
    # The grid matters: on the grid of img_size the same weights give other features.
    for module in model.modules():
        if isinstance(module, GaussianAugmentation):
            module.set_base_grid(model.patch_resolution)
    assert (_features(model, x) - want).abs().max() > 0.1


def test_jumbo_gaug_grid_of_a_checkpoint_without_one_is_its_pos_embed_grid():
    """The authors' checkpoints record no GAug grid; their models run GAug on the grid they
    were built for, which the position embedding tells (as LocAtViT reads them)."""
    source = LocAtJumbo(arch=SMALL, img_size=224)
    state_dict = {k: v for k, v in source.state_dict().items() if k != GAUG_GRID_KEY}
    model = LocAtJumbo(arch=SMALL, img_size=512)
    model.load_state_dict(state_dict)
    assert _gaug_grids(model) == {(14, 14)}
    assert model.pos_embed.shape[1] == 32 * 32


@pytest.mark.parametrize('cls,adapt', [(LocAtRoPEViT, adapt_ropevit_state_dict),
                                       (LocAtJumbo, adapt_jumbo_state_dict)])
def test_adapters_are_pure(cls, adapt):
    source = cls(arch=SMALL, img_size=224)
    model = cls(arch=SMALL, img_size=512)
    state_dict = {k: v for k, v in source.state_dict().items() if k != GAUG_GRID_KEY}
    before = {k: v.clone() for k, v in state_dict.items()}
    own = {k: v.clone() for k, v in model.state_dict().items()}
    grids = _gaug_grids(model)
    adapted = adapt(state_dict, model, {})
    assert GAUG_GRID_KEY in adapted and GAUG_GRID_KEY not in state_dict
    assert state_dict.keys() == before.keys()
    assert all(torch.equal(state_dict[k], before[k]) for k in before)
    assert all(torch.equal(v, own[k]) for k, v in model.state_dict().items())
    assert _gaug_grids(model) == grids


@pytest.mark.parametrize('cls,fixture', [(LocAtRoPEViT, 'locatvit_rope_reference_small.pt'),
                                         (LocAtJumbo, 'locatjumbo_reference_small.pt')])
def test_load_state_dict_reads_the_authors_layout(cls, fixture):
    """``load_state_dict`` (and so mmengine's ``load_from``) reads the authors' (timm) keys
    as ``init_cfg`` does; only their classifier is left over."""
    path = osp.join(SHARED, 'fixtures', fixture)
    if not osp.isfile(path):
        pytest.fail(f'reference fixture missing: {path} (set LOCAT_SHARED)')
    reference = torch.load(path, weights_only=False)
    config = reference['config']
    model = cls(arch=dict(embed_dims=config['embed_dim'], num_layers=config['depth'],
                          num_heads=config['num_heads'],
                          feedforward_channels=4 * config['embed_dim']),
                img_size=config['img_size'])
    result = model.load_state_dict(reference['state_dict'], strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == ['head.bias', 'head.weight']
    assert torch.equal(model.patch_embed.projection.weight,
                       reference['state_dict']['patch_embed.proj.weight'])


def test_jumbo_trains_with_stochastic_depth():
    """Stochastic depth on every branch of a Jumbo block, in training mode."""
    torch.manual_seed(0)
    model = LocAtJumbo(arch=SMALL, img_size=64, drop_path_rate=0.5).train()
    (feature,) = model(torch.randn(4, 3, 64, 64))
    feature.sum().backward()
    assert torch.isfinite(feature).all()
    assert model.layers[1].ffn.dropout_layer.drop_prob == 0.5


@pytest.mark.parametrize('cls', FAMILIES)
def test_frozen_stages_freeze_as_mmpretrains_vit(cls):
    """The embeddings with the dropout after them (mmpretrain's ``_freeze_stages`` puts
    ``drop_after_pos`` in eval mode too), then the blocks; what follows the blocks (the final
    norms, Jumbo's shared MLP) only with every block."""
    model = cls(arch=SMALL, img_size=64, drop_rate=0.1, frozen_stages=1).train()
    assert not model.drop_after_pos.training and not model.patch_embed.training
    assert not model.cls_token.requires_grad
    assert not model.layers[0].training and model.layers[1].training
    assert all(p.requires_grad for p in model.ln1.parameters())
    everything = cls(arch=SMALL, img_size=64, frozen_stages=2).train()
    assert not any(p.requires_grad for p in everything.parameters())
    assert not everything.ln1.training
