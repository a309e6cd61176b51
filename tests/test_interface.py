"""The interface layer (``models/backbones/interface.py``): both backbones read arguments with
upstream's meaning and refuse bad ones with errors upstream's tests catch, one rule for both.

Each test pins one item of issue 16 or issue 17 probe 6; the expectations are upstream's
behaviour (read from mmpretrain 1.2 / mmseg 1.2 and, where they run here, their classes).
"""
import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope

import locat_mm  # noqa: F401  (registers the backbones)
from locat_mm import launch
from locat_mm.layers import PatchRepresentationRefinement
from locat_mm.models import LocAtSwin, LocAtViT

# Small architectures: ViT 32 wide, 2 blocks; Swin 16 wide, two blocks per stage.
VIT = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
           img_size=32, patch_size=8, gaug=False, prr=False)
SWIN = dict(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4]),
            gaug=False, prr=False)
BACKBONES = [(LocAtViT, VIT), (LocAtSwin, SWIN)]
IDS = ['vit', 'swin']


def build(cls, base, **kwargs):
    return cls(**{**base, **kwargs})


@pytest.fixture
def mmseg_scope():
    """mmseg's default scope, as its Runner sets it."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


# ----------------------------------------------------------------------------- error types
@pytest.mark.parametrize('cls,base', BACKBONES, ids=IDS)
def test_bad_values_are_catchable_as_assertion_and_value_errors(cls, base):
    """mmpretrain asserts on these; the messages keep saying what to change."""
    for kwargs, match in ((dict(arch='unknown'), 'not in default archs'),
                          (dict(arch=dict(num_heads=2)), 'Custom arch needs'),
                          (dict(out_indices=[0, 13]), 'Invalid out_indices 13')):
        for error in (AssertionError, ValueError):
            with pytest.raises(error, match=match):
                build(cls, base, **kwargs)


@pytest.mark.parametrize('cls,base', BACKBONES, ids=IDS)
def test_out_indices_of_a_wrong_type(cls, base):
    """mmpretrain asserts (message ``get <class 'dict'>``), mmseg raises TypeError."""
    for error in (AssertionError, TypeError):
        with pytest.raises(error, match="get <class 'dict'>"):
            build(cls, base, out_indices={1: 1})
        with pytest.raises(error):
            build(cls, base, out_indices=1.)


def test_cls_token_output_without_class_token_is_a_value_error():
    with pytest.raises(ValueError, match='must be True'):
        build(LocAtViT, VIT, with_cls_token=False, out_type='cls_token')
    with pytest.raises(AssertionError):  # mmseg asserts
        LocAtViT(with_cls_token=False, output_cls_token=True, gaug=False, prr=False)


# ----------------------------------------------------------------------------- sizes
def test_img_size_of_three_values_or_a_float_is_refused():
    with pytest.raises(AssertionError, match='img_size'):
        build(LocAtViT, VIT, img_size=(32, 32, 32))
    with pytest.raises(TypeError, match='img_size'):
        build(LocAtViT, VIT, img_size=32.0)
    assert build(LocAtViT, VIT, img_size=(32, )).img_size == (32, 32)


def test_pretrain_img_size_of_three_values_is_refused_by_name():
    with pytest.raises(AssertionError, match='pretrain_img_size'):
        LocAtSwin(pretrain_img_size=(112, 112, 112), gaug=False)


# ----------------------------------------------------------------------------- pretrained
@pytest.mark.parametrize('cls,base', BACKBONES, ids=IDS)
def test_pretrained_becomes_init_cfg_with_mmsegs_warning(cls, base):
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        model = build(cls, base, pretrained='ckpt.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='ckpt.pth')


@pytest.mark.parametrize('cls,base', BACKBONES, ids=IDS)
def test_pretrained_of_a_wrong_type_is_a_type_error_at_construction(cls, base):
    with pytest.raises(TypeError, match='pretrained must be a str'):
        build(cls, base, pretrained=123)
    with pytest.raises(AssertionError, match='at the same time'):
        build(cls, base, pretrained='ckpt.pth', init_cfg=dict(type='Pretrained',
                                                              checkpoint='other.pth'))


@pytest.mark.parametrize('cls,base', BACKBONES, ids=IDS)
def test_init_cfg_of_a_wrong_type_is_a_type_error(cls, base):
    """As upstream: the model builds, and ``init_weights`` raises TypeError (not an
    AttributeError at construction)."""
    model = build(cls, base, init_cfg=123)
    with pytest.raises(TypeError, match='init_cfg'):
        model.init_weights()


# ----------------------------------------------------------------------------- toolbox rule
@pytest.mark.parametrize('cls,base,seg_arg', [
    (LocAtViT, VIT, dict(embed_dims=32, num_layers=1, num_heads=2)),
    (LocAtSwin, SWIN, dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]))],
                         ids=IDS)
def test_one_toolbox_rule_for_both_classes(cls, base, seg_arg, mmseg_scope):
    # pretrained marks no toolbox: an mmpretrain-style backbone in an mmseg config whose
    # EncoderDecoder passes model.pretrained keeps mmpretrain's conventions.
    assert build(cls, base, pretrained='ckpt.pth').toolbox == 'mmpretrain'
    # With no toolbox-only argument, mmseg's default scope decides, for both classes.
    plain = {k: v for k, v in base.items() if k in ('gaug', 'prr')}
    assert cls(**plain).toolbox == 'mmseg'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert cls(**plain).toolbox == 'mmpretrain'
        assert cls(**plain, **seg_arg).toolbox == 'mmseg'
        assert cls(**plain, toolbox='mmseg').toolbox == 'mmseg'
    with pytest.raises(AssertionError, match='use one interface'):
        build(cls, base, **seg_arg)


def test_swin_follows_mmsegs_scope(mmseg_scope):
    """mmseg's Swin outputs every stage, as a list (LocAtSwin ignored the scope)."""
    model = LocAtSwin(gaug=False).eval()
    assert model.out_indices == (0, 1, 2, 3) and model.with_prr is False
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert isinstance(outs, list) and [o.shape[1] for o in outs] == [96, 192, 384, 768]


def test_the_choice_is_logged_once(monkeypatch):
    lines = []

    class Logger:
        def info(self, message):
            lines.append(message)

        def __getattr__(self, name):  # other log calls: ignored
            return lambda *args, **kwargs: None

    from locat_mm.models.backbones import interface
    monkeypatch.setattr(interface.MMLogger, 'get_current_instance', lambda: Logger())
    monkeypatch.setattr(interface, '_LOGGED', set())
    for _ in range(2):
        build(LocAtSwin, SWIN)
        build(LocAtViT, VIT)
    assert lines == [
        "LocAtSwin: mmpretrain's conventions (argument arch); set toolbox= to choose.",
        "LocAtViT: mmpretrain's conventions (argument arch); set toolbox= to choose."]


# ----------------------------------------------------------------------------- probe 6: ranges
@pytest.mark.parametrize('cls,base', BACKBONES, ids=IDS)
@pytest.mark.parametrize('kwargs,name,error', [
    (dict(drop_path_rate=1.5), 'drop_path_rate', ValueError),
    (dict(drop_path_rate=-0.1), 'drop_path_rate', ValueError),
    (dict(drop_rate=2.), 'drop_rate', ValueError),
    (dict(prr='yes'), 'prr', TypeError),
    (dict(gaug='no'), 'gaug', TypeError),
    (dict(patch_size=0), 'patch_size', ValueError),
    (dict(in_channels=0), 'in_channels', ValueError),
])
def test_ranges_and_types_are_checked_at_construction(cls, base, kwargs, name, error):
    with pytest.raises(error, match=name):
        build(cls, base, **kwargs)


def test_in_channels_against_the_data_preprocessor_before_the_runner(tmp_path):
    """RGB data (a 3-entry mean) and in_channels=1: refused before any file is written."""
    work_dir = tmp_path / 'work'
    cfg = launch.Config(dict(
        model=dict(type='ImageClassifier',
                   backbone=dict(type='LocAtViT', in_channels=1, **VIT)),
        data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.4, 57.1, 57.4]),
        work_dir=str(work_dir)))
    with pytest.raises(ValueError, match=r'in_channels is 1 .* 3 channels'):
        launch.build_runner(cfg)
    assert not osp.exists(work_dir)
    from locat_mm.models.backbones.interface import check_input_channels
    seg = dict(backbone=dict(type='LocAtSwin'), data_preprocessor=dict(mean=[0.]))
    with pytest.raises(AssertionError, match='in_channels=1'):
        check_input_channels(seg)
    check_input_channels(dict(seg, backbone=dict(type='LocAtSwin', in_channels=1)))


def test_swin_names_in_channels_at_the_first_forward():
    model = build(LocAtSwin, SWIN, in_channels=1)
    with pytest.raises(ValueError, match='in_channels=1'):
        model(torch.randn(1, 3, 64, 64))


# ----------------------------------------------------------------------------- attributes
def test_vit_exposes_what_upstream_code_reads():
    model = build(LocAtViT, VIT, drop_path_rate=0.1, final_norm=True)
    rates = torch.linspace(0, 0.1, 2).tolist()
    for layer, rate in zip(model.layers, rates):
        assert layer.attn.embed_dims == 32 and layer.attn.num_heads == 2
        assert layer.embed_dims == 32
        assert layer.ffn.feedforward_channels == 64 and layer.ffn.embed_dims == 32
        assert layer.ffn.dropout_layer.drop_prob == pytest.approx(rate)
        assert layer.norm1 is layer.ln1 and layer.norm2 is layer.ln2
    assert model.norm1 is model.ln1


def test_vit_static_resize_pos_embed_is_mmsegs():
    from mmseg.models.backbones import VisionTransformer
    pos_embed = torch.randn(1, 1 + 14 * 14, 8)
    for mode in ('bilinear', 'bicubic'):
        expected = VisionTransformer.resize_pos_embed(pos_embed, (16, 12), (14, 14), mode)
        got = LocAtViT.resize_pos_embed(pos_embed, (16, 12), (14, 14), mode)
        assert torch.equal(got, expected)
    with pytest.raises(TypeError):  # mmseg's signature: no sizes as four ints
        LocAtViT.resize_pos_embed(pos_embed[0], 512, 512, 224, 224, 'bilinear')


def test_swin_exposes_what_upstream_code_reads():
    model = build(LocAtSwin, SWIN, drop_path_rate=0.2)
    blocks = [block for stage in model.stages for block in stage.blocks]
    for i, block in enumerate(blocks):
        expected = 0.2 / (len(blocks) - 1) * i
        assert block.attn.drop.drop_prob == pytest.approx(expected)
        assert block.ffn.dropout_layer.drop_prob == pytest.approx(expected)
        assert block.ffn.feedforward_channels == 4 * block.ffn.embed_dims
    assert [stage.embed_dims for stage in model.stages] == [16, 32, 64, 128]


def test_swin_window_larger_than_the_map_names_the_window_size():
    model = build(LocAtSwin, SWIN, window_size=12)
    with pytest.raises(AssertionError, match=r'the window size \(12\)'):
        model(torch.randn(1, 3, 224, 224))


def test_swin_prr_is_a_module_hooks_see():
    model = build(LocAtSwin, SWIN, prr=True, pad_small_map=True).eval()
    assert isinstance(model.prr, PatchRepresentationRefinement)
    assert model.prr.num_heads == 4
    seen = []
    model.prr.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert seen == [(1, 4, 128)]


# ----------------------------------------------------------------------------- abs pos embed
def randomize(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    for param in model.parameters():
        param.data = torch.randn(param.shape, generator=gen) * 0.05
    return model


@pytest.mark.parametrize('size', [(64, 64), (96, 80)])
def test_abs_pos_embed_matches_mmpretrains_swin(size):
    """Same weights, same outputs as mmpretrain's Swin with use_abs_pos_embed=True, at the
    built size and resized to another (plain bicubic, as mmpretrain)."""
    from mmpretrain.models.backbones import SwinTransformer
    args = dict(arch=SWIN['arch'], img_size=64, use_abs_pos_embed=True, out_indices=(2, 3),
                pad_small_map=True, drop_path_rate=0.)
    upstream = randomize(SwinTransformer(**args))
    upstream.eval()  # returns None
    model = LocAtSwin(**args, gaug=False, prr=False).eval()
    assert model.absolute_pos_embed.shape == (1, 16 * 16, 16)
    model.load_state_dict(upstream.state_dict(), strict=True)
    assert_same_outputs_and_embedding_matters(model, upstream, torch.randn(2, 3, *size))


def assert_same_outputs_and_embedding_matters(model, upstream, x):
    with torch.no_grad():
        expected = upstream(x)
        for got, want in zip(model(x), expected):
            torch.testing.assert_close(got, want)
        model.absolute_pos_embed.zero_()
        assert (model(x)[-1] - expected[-1]).abs().max() > 1e-3


def test_abs_pos_embed_matches_mmsegs_swin():
    from mmseg.models.backbones import SwinTransformer
    args = dict(pretrain_img_size=64, embed_dims=16, depths=[2, 2, 2, 2],
                num_heads=[2, 2, 4, 4], use_abs_pos_embed=True, drop_path_rate=0.)
    upstream = randomize(SwinTransformer(**args))
    upstream.eval()
    model = LocAtSwin(**args, gaug=False).eval()
    model.load_state_dict(upstream.state_dict(), strict=True)
    assert_same_outputs_and_embedding_matters(model, upstream, torch.randn(1, 3, 64, 64))


def test_abs_pos_embed_is_initialised_and_frozen_with_the_patch_embedding():
    model = build(LocAtSwin, SWIN, use_abs_pos_embed=True, frozen_stages=0,
                  init_cfg=[dict(type='Kaiming', layer='Conv2d')])
    assert torch.count_nonzero(model.absolute_pos_embed) == 0
    model.init_weights()
    std = model.absolute_pos_embed.std().item()
    assert 0.015 < std < 0.025  # trunc-normal(0.02)
    model.train()
    assert not model.absolute_pos_embed.requires_grad
