"""LinearSegHead (the linear protocol's probe) and the layer-decay optimizer constructor."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import locat_mm  # noqa: F401  (registers LocAtViT, LinearSegHead and the constructor)
from mmseg.registry import MODELS

TINY_ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)
BASE_LR, BASE_WD, RATE = 1e-3, 0.05, 0.5


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def build_head(**kwargs) -> nn.Module:
    cfg = dict(type='LinearSegHead', in_channels=16, channels=512, num_classes=7)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_linear_head_is_conv_groupnorm_gelu_classifier():
    head = build_head()
    conv, norm, act = head.proj.conv, head.proj.norm, head.proj.activate
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
    assert (conv.in_channels, conv.out_channels) == (16, 512)
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 1 and norm.num_channels == 512
    assert isinstance(act, nn.GELU)
    assert head.conv_seg.kernel_size == (1, 1)
    assert (head.conv_seg.in_channels, head.conv_seg.out_channels) == (512, 7)
    assert head.dropout is None  # the paper's probe has no dropout


def test_linear_head_computes_the_paper_probe_on_the_last_feature_map():
    head = build_head().eval()
    nn.init.normal_(head.proj.norm.weight)
    nn.init.normal_(head.proj.norm.bias)
    first, last = torch.randn(2, 16, 5, 6), torch.randn(2, 16, 3, 4)
    out = head((first, last))
    assert out.shape == (2, 7, 3, 4)  # stride kept; the segmentor upsamples
    hidden = F.conv2d(last, head.proj.conv.weight, head.proj.conv.bias)
    hidden = F.gelu(F.group_norm(hidden, 1, head.proj.norm.weight, head.proj.norm.bias))
    expected = F.conv2d(hidden, head.conv_seg.weight, head.conv_seg.bias)
    torch.testing.assert_close(out, expected)


def test_linear_head_is_independent_of_batch_composition():
    # One-group GroupNorm normalises each image alone: a BN probe would not pass this.
    head = build_head().train()
    x = torch.randn(4, 16, 3, 3)
    torch.testing.assert_close(head((x, ))[:1], head((x[:1], )))


# ---------------------------------------------------------------- layer-wise lr decay
def build_segmentor(frozen_stages: int = -1) -> nn.Module:
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='LocAtViT',
                arch=TINY_ARCH,
                img_size=32,
                out_indices=(1, 2),
                out_type='featmap',
                final_norm=False,
                frozen_stages=frozen_stages),
            neck=dict(type='MultiLevelNeck', in_channels=[32, 32], out_channels=32,
                      scales=[2, 1]),
            decode_head=dict(type='LinearSegHead', in_channels=32, channels=8, num_classes=3)))


def build_groups(model: nn.Module, **paramwise_cfg) -> dict:
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD),
            constructor='LocAtLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=RATE, **paramwise_cfg)))
    return {g['param_name']: g for g in wrapper.optimizer.param_groups}


def expected_depth(name: str) -> int:
    """0 for the embeddings, i + 1 for block i, num_layers + 1 for the rest (neck, heads)."""
    if name.startswith(('backbone.pos_embed', 'backbone.cls_token', 'backbone.patch_embed')):
        return 0
    if name.startswith('backbone.layers.'):
        return int(name.split('.')[2]) + 1
    return TINY_ARCH['num_layers'] + 1


def test_layer_decay_lr_of_every_group():
    model = build_segmentor()
    groups = build_groups(model)
    assert set(groups) == {n for n, _ in model.named_parameters()}
    num_depths = TINY_ARCH['num_layers'] + 2
    for name, group in groups.items():
        scale = RATE**(num_depths - 1 - expected_depth(name))
        assert group['lr'] == pytest.approx(BASE_LR * scale), name
    # neck and heads train at the base lr, the embeddings at the smallest
    assert groups['neck.convs.0.conv.weight']['lr'] == pytest.approx(BASE_LR)
    assert groups['backbone.pos_embed']['lr'] == pytest.approx(BASE_LR * RATE**4)


def test_layer_decay_weight_decay_defaults():
    groups = build_groups(build_segmentor())
    for name, group in groups.items():
        no_decay = (group['params'][0].ndim == 1 or name.endswith(('pos_embed', 'cls_token')))
        assert group['weight_decay'] == (0. if no_decay else BASE_WD), name
    assert groups['backbone.layers.0.ln1.weight']['weight_decay'] == 0.
    assert groups['backbone.layers.0.attn.qkv.bias']['weight_decay'] == 0.
    assert groups['backbone.layers.0.attn.qkv.weight']['weight_decay'] == BASE_WD


def test_layer_decay_honours_configured_keys():
    groups = build_groups(
        build_segmentor(), flat_decay_mult=1., custom_keys={'gaug': dict(decay_mult=0.1)})
    assert groups['backbone.layers.0.ln1.bias']['weight_decay'] == BASE_WD
    assert groups['backbone.layers.1.attn.gaug.log_var.weight']['weight_decay'] == \
        pytest.approx(BASE_WD * 0.1)
    assert groups['backbone.pos_embed']['weight_decay'] == 0.  # default kept


def test_layer_decay_skips_frozen_parameters():
    groups = build_groups(build_segmentor(frozen_stages=1))
    frozen = ('backbone.layers.0.', 'backbone.patch_embed', 'backbone.pos_embed')
    assert not any(name.startswith(frozen) for name in groups)
    assert 'backbone.layers.1.attn.qkv.weight' in groups


def test_layer_decay_needs_a_backbone_with_depths():
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type='ResNetV1c', depth=18, num_stages=1, out_indices=(0, ),
                          strides=(1, ), dilations=(1, )),
            decode_head=dict(type='LinearSegHead', in_channels=64, channels=8, num_classes=3)))
    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        build_groups(model)
