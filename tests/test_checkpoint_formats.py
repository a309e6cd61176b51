"""Initialisation order and checkpoint formats of both backbones (issue 16).

Every initialisation path starts GAug as the authors do; a Pretrained entry is applied last
whatever else init_cfg holds; every layout mmpretrain's and mmseg's own loaders read is read
(or refused with an error), with relative-position tables and absolute position embeddings
fitted as upstream fits them.
"""
import math
import re

import pytest
import torch

from locat_mm.models import LocAtSwin, LocAtViT
from locat_mm.layers.gaug import GaussianAugmentation
from locat_mm.models.ckpt_geometry import (fit_abs_pos_embed, resize_relative_position_table,
                                           source_grid)

VIT = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
           img_size=64, patch_size=16)
SWIN = dict(arch=dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4]), out_indices=(0, 1))
# The entries of mmpretrain's and mmseg's configs that reach GAug's nn.Linear maps, or not.
INIT_LISTS = [
    [dict(type='Kaiming', layer='Conv2d', mode='fan_in', nonlinearity='linear')],
    [dict(type='TruncNormal', layer='Linear', std=.02, bias=0.5)],
    dict(type='Constant', layer='Linear', val=0.5, bias=0.5),
]


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        param.data = torch.randn(param.shape, generator=gen) * 0.5
    return model


def gaug_layers(model: torch.nn.Module):
    layers = [m for m in model.modules() if isinstance(m, GaussianAugmentation)]
    assert layers
    return layers


def assert_gaug_at_the_authors_start(model: torch.nn.Module) -> None:
    """The authors' start (timm's init of every Linear): zero biases, so a query at 0 gets
    variance exactly 1 per axis (v = K sigmoid(-ln(K - 1))) and amplitude softplus(0) = ln 2;
    weights trunc-normal(0.02)."""
    for gaug in gaug_layers(model):
        width = gaug.log_var.in_features
        var, amp = gaug(torch.zeros(1, 1, 1, width), gaug.base_grid)
        torch.testing.assert_close(var, torch.ones(1, 1, 1, 2))
        torch.testing.assert_close(amp, torch.full((1, 1, 1, 1), math.log(2.)))
        weights = torch.cat([gaug.log_var.weight.flatten(), gaug.log_alpha.weight.flatten()])
        assert weights.abs().max() <= 2 * .02 * 3 and 0.005 < weights.std() < 0.04


# ----------------------------------------------------------------------------- initialisation
@pytest.mark.parametrize('init_cfg', [None] + INIT_LISTS)
@pytest.mark.parametrize('cls,kwargs', [(LocAtViT, VIT), (LocAtSwin, SWIN)])
def test_every_init_path_starts_gaug_as_the_authors(cls, kwargs, init_cfg):
    torch.manual_seed(0)
    model = cls(**kwargs, init_cfg=init_cfg)
    model.init_weights()
    assert_gaug_at_the_authors_start(model)


@pytest.mark.parametrize('cls,kwargs', [(LocAtViT, VIT), (LocAtSwin, SWIN)])
def test_a_plain_checkpoint_leaves_gaug_at_the_authors_start(cls, kwargs, tmp_path):
    """strict=False from a plain checkpoint: GAug keeps its start (not nn.Linear's)."""
    plain = randomize(cls(**kwargs, gaug=False, prr=False))
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': plain.state_dict()}, path)
    for init_cfg in ([dict(type='Pretrained', checkpoint=str(path), strict=False)],
                     dict(type='Pretrained', checkpoint=str(path), strict=False)):
        model = cls(**kwargs, init_cfg=init_cfg)
        model.init_weights()
        assert_gaug_at_the_authors_start(model)


@pytest.mark.parametrize('init_cfg', [
    lambda path: dict(type='Pretrained', checkpoint=path),
    lambda path: [dict(type='Pretrained', checkpoint=path)],
    lambda path: [dict(type='Pretrained', checkpoint=path),
                  dict(type='Kaiming', layer='Conv2d'),
                  dict(type='TruncNormal', layer='Linear', std=.02)],
])
@pytest.mark.parametrize('cls,kwargs', [(LocAtViT, VIT), (LocAtSwin, SWIN)])
def test_pretrained_comes_last_whatever_the_init_cfg_form(cls, kwargs, init_cfg, tmp_path):
    """Every weight ends as the checkpoint's, relative-position tables included (LocAtSwin
    with a list re-initialised them after loading: 1.7 away on the Swin fixture)."""
    source = randomize(cls(**kwargs))
    path = tmp_path / 'source.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    model = cls(**kwargs, init_cfg=init_cfg(str(path)))
    model.init_weights()
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


# ----------------------------------------------------------------------------- Swin formats
def test_mmpretrain_v1_swin_final_norm_is_renamed(tmp_path):
    """mmpretrain before its _version 2 kept the final norm as ``norm.*``; its
    ``_load_from_state_dict`` renames it ``norm{last}.*``, and so do both loading paths here."""
    source = randomize(LocAtSwin(**SWIN, gaug=False, prr=False))
    old = {re.sub(r'^norm1\.', 'norm.', k): v for k, v in source.state_dict().items()}
    assert 'norm.weight' in old and 'norm1.weight' not in old
    old['stages.0.blocks.1.attn_mask'] = torch.zeros(16, 49, 49)  # _version < 3 stored masks
    path = tmp_path / 'v1.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in old.items()}}, path)
    model = LocAtSwin(**SWIN, gaug=False, prr=False,
                      init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.norm1.weight, source.norm1.weight)
    direct = LocAtSwin(**SWIN, gaug=False, prr=False)
    direct.load_state_dict(dict(old), strict=True)
    assert torch.equal(direct.norm1.bias, source.norm1.bias)


@pytest.mark.parametrize('cls,kwargs', [(LocAtViT, VIT), (LocAtSwin, SWIN)])
def test_a_data_parallel_checkpoint_loads(cls, kwargs, tmp_path):
    """``module.`` before every key (a DistributedDataParallel model), which mmseg's Swin
    strips, is stripped for both backbones."""
    source = randomize(cls(**kwargs))
    path = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {'module.' + k: v for k, v in source.state_dict().items()}}, path)
    model = cls(**kwargs, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in source.state_dict().items())


def _mmseg_swin(window: int, **kwargs):
    from mmseg.models.backbones import SwinTransformer
    return SwinTransformer(pretrain_img_size=224, embed_dims=16, depths=[2, 2],
                           num_heads=[2, 4], strides=(4, 2), out_indices=(0, 1),
                           window_size=window, **kwargs)


def test_relative_position_tables_are_resized_as_mmseg_resizes_them(tmp_path):
    """A window-7 checkpoint in a window-12 model: the tables are those mmseg's Swin computes
    from the same checkpoint (its init_weights), bit for bit, through both loading paths."""
    torch.manual_seed(0)
    source = randomize(_mmseg_swin(7))
    path = tmp_path / 'w7.pth'
    # Without the index buffers: mmseg's loader resizes tables but fails on indices of
    # another window (size mismatch); ours takes the model's own index either way.
    torch.save({'state_dict': {k: v for k, v in source.state_dict().items()
                               if not k.endswith('relative_position_index')}}, path)
    upstream = _mmseg_swin(12, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    upstream.init_weights()
    model = LocAtSwin(window_size=12, gaug=False, pretrain_img_size=224, embed_dims=16,
                      depths=[2, 2], num_heads=[2, 4], strides=(4, 2), out_indices=(0, 1),
                      init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    direct = LocAtSwin(window_size=12, gaug=False, pretrain_img_size=224, embed_dims=16,
                       depths=[2, 2], num_heads=[2, 4], strides=(4, 2), out_indices=(0, 1))
    direct.load_state_dict(source.state_dict(), strict=True)
    ours, ours_direct, theirs = model.state_dict(), direct.state_dict(), upstream.state_dict()
    tables = [k for k in theirs if k.endswith('relative_position_bias_table')]
    assert tables and theirs[tables[0]].shape == (23 * 23, 2)
    for key in tables:
        assert torch.equal(ours[key], theirs[key]), key
        assert torch.equal(ours_direct[key], theirs[key]), key
        assert torch.equal(resize_relative_position_table(source.state_dict()[key], 12),
                           theirs[key])
    index = [k for k in ours if k.endswith('relative_position_index')]
    assert all(ours[k].shape == (144, 144) for k in index)


# ----------------------------------------------------------------------------- ViT formats
def test_vit_checkpoint_without_the_class_token_entry(tmp_path):
    """mmpretrain drops a class-token position a model without class token has no use for;
    the other way round (a class-token model from a checkpoint without one) is refused."""
    source = randomize(LocAtViT(**VIT, gaug=False, prr=False))
    path = tmp_path / 'cls.pth'
    torch.save(source.state_dict(), path)
    no_cls = LocAtViT(**VIT, gaug=False, prr=False, with_cls_token=False,
                      out_type='featmap', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    no_cls.init_weights()
    assert torch.equal(no_cls.pos_embed, source.pos_embed[:, 1:])
    bare = tmp_path / 'bare.pth'
    torch.save(dict(no_cls.state_dict()), bare)
    with pytest.raises(ValueError, match='with_cls_token'):
        LocAtViT(**VIT, gaug=False, prr=False, init_cfg=dict(
            type='Pretrained', checkpoint=str(bare))).init_weights()


# ----------------------------------------------------------------------------- absolute pos
def test_absolute_position_embedding_is_fitted_as_upstream_fits_it():
    """LocAtSwin's ``absolute_pos_embed`` (mmpretrain's (1, H*W, C); mmseg saves (1, C, H, W))
    from a checkpoint of another grid: as mmpretrain's ``_prepare_abs_pos_embed`` resizes it."""
    from mmpretrain.models.backbones import SwinTransformer
    arch = dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4])
    torch.manual_seed(0)
    source = SwinTransformer(arch=arch, img_size=224, use_abs_pos_embed=True,
                             out_indices=(1, ))
    torch.nn.init.normal_(source.absolute_pos_embed)
    target = SwinTransformer(arch=arch, img_size=320, use_abs_pos_embed=True, out_indices=(1, ))
    target.load_state_dict(source.state_dict(), strict=False)
    pos = source.absolute_pos_embed.detach()
    assert torch.equal(fit_abs_pos_embed(pos, (80, 80)), target.absolute_pos_embed.detach())
    nchw = pos.transpose(1, 2).reshape(1, 16, 56, 56)
    assert torch.equal(fit_abs_pos_embed(nchw, (80, 80)), target.absolute_pos_embed.detach())
    assert torch.equal(fit_abs_pos_embed(pos, (56, 56)), pos)


def test_source_grid_uses_what_is_known_and_refuses_what_is_not():
    assert source_grid(1024, known=(16, 64)) == (16, 64)
    assert source_grid(1024) == (32, 32)
    assert source_grid(392, own=(14, 28)) == (14, 28)
    with pytest.raises(ValueError, match='pos_embed_grid'):
        source_grid(392)
    with pytest.raises(ValueError, match='recorded grid'):
        source_grid(1024, known=(14, 14))
