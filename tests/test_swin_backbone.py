"""LocAtSwin's OpenMMLab interfaces (mmpretrain's and mmseg's Swin), numerics and weights."""
import math
import re

import pytest
import torch
import torch.nn.functional as F

import locat_mm  # noqa: F401  (registers LocAtSwin)
from locat_mm.layers.window_attention import WindowLocAtAttention
from locat_mm.models import LocAtSwin
from locat_mm.models.swin_ckpt_convert import convert_timm_swin_state_dict, timm_merge_to_unfold

# Two blocks per stage (plain and shifted windows), head width 8.
# As an mmpretrain arch dict, or as mmseg's arguments (which select mmseg's interface).
TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16])


def small(**kwargs) -> LocAtSwin:
    kwargs.setdefault('arch', dict(TINY))
    return LocAtSwin(**kwargs)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights with every term visible: relative-position tables and norms away from their
    initial values, GAug maps scaled up so variances and amplitudes vary per query."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        scale = 0.5 if ('table' in name or 'norm' in name or 'gaug' in name) else 0.05
        param.data = torch.randn(param.shape, generator=gen) * scale + (
            1. if name.endswith('norm1.weight') or name.endswith('norm2.weight') else 0.)
    return model


def window_attention_by_formula(attn: WindowLocAtAttention, x, mask=None):
    """SPEC section 1 on one window, written out: logits = q k^T / sqrt(c) + relative bias
    [+ mask] + a_i exp(-0.5 dy^2 / (vy + eps) - 0.5 dx^2 / (vx + eps)), with GAug's maps on the
    unscaled queries."""
    B_, N, C = x.shape
    h, c, w = attn.num_heads, attn.head_dims, attn.window_size
    q, k, v = (attn.qkv(x).reshape(B_, N, 3, h, c).permute(2, 0, 3, 1, 4))
    logits = q @ k.transpose(-2, -1) / math.sqrt(c)
    # Relative-position bias, by its definition: table row (dy + w - 1) * (2w - 1) + dx + w - 1.
    ys, xs = torch.div(torch.arange(N), w, rounding_mode='floor'), torch.arange(N) % w
    dy, dx = ys[:, None] - ys[None], xs[:, None] - xs[None]
    table = attn.relative_position_bias_table
    logits = logits + table[(dy + w - 1) * (2 * w - 1) + dx + w - 1].permute(2, 0, 1)
    if mask is not None:
        logits = (logits.view(-1, mask.shape[0], h, N, N) + mask[None, :, None]).view(B_, h, N, N)
    K = w**2
    s = q @ attn.gaug.log_var.weight.T + attn.gaug.log_var.bias
    t = q @ attn.gaug.log_alpha.weight.T + attn.gaug.log_alpha.bias
    var = K * torch.sigmoid(s - math.log(K - 1))
    amp = F.softplus(t)
    floor = -0.5 * (w - 1)**2
    ddy = (-0.5 * dy.float()**2).clamp_min(floor)
    ddx = (-0.5 * dx.float()**2).clamp_min(floor)
    eps = 0.1
    bias = amp * torch.exp(ddy / (var[..., 0:1] + eps) + ddx / (var[..., 1:2] + eps))
    attn_w = (logits + bias).softmax(-1)
    out = (attn_w @ v).transpose(1, 2).reshape(B_, N, C)
    return attn.proj(out)


# ----------------------------------------------------------------------------- registries
@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg'])
def test_both_toolbox_registries_build_it(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    assert isinstance(registry.build(dict(type='LocAtSwin', arch=dict(TINY))), LocAtSwin)
    from mmengine.registry import MODELS
    assert isinstance(MODELS.build(dict(type='locat_mm.LocAtSwin', arch=dict(TINY))), LocAtSwin)


def test_builds_inside_both_toolboxes_models():
    from mmpretrain.registry import MODELS as PRETRAIN
    from mmseg.registry import MODELS as SEG
    classifier = PRETRAIN.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='LocAtSwin', arch=dict(TINY)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=128)))
    assert classifier(torch.randn(2, 3, 224, 224), mode='tensor').shape == (2, 5)
    segmentor = SEG.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type='LocAtSwin', window_size=4, **TINY),
            decode_head=dict(
                type='FCNHead', in_channels=128, in_index=3, channels=16, num_convs=1,
                num_classes=4, norm_cfg=dict(type='BN'))))
    assert segmentor(torch.randn(2, 3, 64, 64), mode='tensor').shape == (2, 4, 2, 2)


def test_parameter_cost_of_locat():
    """GAug adds (2c + 2) + (c + 1) = 99 parameters per block (c = 32); PRR none."""

    def count(**kwargs):
        with torch.device('meta'):
            return sum(p.numel() for p in LocAtSwin(**kwargs).parameters())

    assert count(arch='tiny') - count(arch='tiny', gaug=False, prr=False) == 1188
    assert count(arch='base') - count(arch='base', gaug=False, prr=False) == 2376


# ----------------------------------------------------------------------------- numerics
@pytest.mark.parametrize('shift', [False, True])
def test_window_attention_follows_the_formula(shift):
    torch.manual_seed(0)
    attn = randomize(WindowLocAtAttention(32, 2, window_size=4)).eval()
    x = torch.randn(2 * 4, 16, 32)  # 2 images of 4 windows
    mask = None
    if shift:
        from locat_mm.layers.window_attention import shifted_window_mask
        mask = shifted_window_mask((8, 8), 4, 2, x.device)
        assert mask.shape == (4, 16, 16) and (mask < 0).any()
    with torch.no_grad():
        torch.testing.assert_close(attn(x, (4, 4), 0, mask),
                                   window_attention_by_formula(attn, x, mask))


def test_prr_refines_only_the_last_stage_before_pooling():
    torch.manual_seed(0)
    with_prr = randomize(small(out_indices=(2, 3))).eval()
    without = small(out_indices=(2, 3), prr=False).eval()
    without.load_state_dict(with_prr.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        (mid, last), (mid0, last0) = with_prr(x), without(x)
    torch.testing.assert_close(mid, mid0)
    tokens = last0.flatten(2).transpose(1, 2)  # (2, 49, 128), after the final norm
    heads = tokens.reshape(2, 49, 16, 8).transpose(1, 2)
    refined = ((heads @ heads.transpose(-2, -1)) / math.sqrt(8)).softmax(-1) @ heads
    refined = refined.transpose(1, 2).reshape(2, 49, 128)
    torch.testing.assert_close(last, refined.transpose(1, 2).reshape(2, 128, 7, 7))


MMPRETRAIN_CASES = [
    dict(),
    dict(out_indices=(0, 1, 2, 3)),
    dict(out_indices=(1, 3), out_after_downsample=True),
    dict(out_indices=(0, 3), pad_small_map=True),
    dict(window_size=4, drop_path_rate=0.3),
]


@pytest.mark.parametrize('kwargs', MMPRETRAIN_CASES)
def test_plain_swin_matches_mmpretrain(kwargs):
    """gaug=False, prr=False is mmpretrain's SwinTransformer: same keys, same outputs."""
    from mmpretrain.models import SwinTransformer
    torch.manual_seed(0)
    upstream = randomize(SwinTransformer(arch=dict(TINY), **kwargs))
    upstream.eval()  # mmpretrain's Swin.train returns None
    model = small(gaug=False, prr=False, **kwargs).eval()
    model.load_state_dict(upstream.state_dict(), strict=True)
    size = (200, 232) if kwargs.get('pad_small_map') else (224, 224)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected, got = upstream(x), model(x)
    assert isinstance(got, tuple) and len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_plain_swin_matches_mmseg_with_mmseg_arguments():
    """mmseg's arguments give mmseg's SwinTransformer: keys, a list of outputs, padding of
    odd sizes and small maps, values."""
    from mmseg.models.backbones import SwinTransformer
    args = dict(
        pretrain_img_size=224, embed_dims=16, patch_size=4, window_size=7, mlp_ratio=2,
        depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4], strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3), qkv_bias=False, qk_scale=None, patch_norm=True,
        drop_rate=0., attn_drop_rate=0., drop_path_rate=0.3, use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'), norm_cfg=dict(type='LN', requires_grad=True))
    torch.manual_seed(0)
    upstream = randomize(SwinTransformer(**args))
    upstream.eval()  # mmseg's Swin.train returns None
    model = LocAtSwin(gaug=False, **args).eval()
    assert model.with_prr is False  # dense features never get PRR
    model.load_state_dict(upstream.state_dict(), strict=True)
    x = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        expected, got = upstream(x), model(x)
    assert isinstance(got, list) and [o.shape[1] for o in got] == [16, 32, 64, 128]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_out_types_and_strides():
    model = small(out_indices=(0, 1, 2, 3)).eval()
    outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 56, 56), (1, 32, 28, 28),
                                              (1, 64, 14, 14), (1, 128, 7, 7)]
    after = small(out_indices=(0, 2), out_after_downsample=True).eval()
    assert [tuple(o.shape) for o in after(torch.randn(1, 3, 224, 224))] == \
        [(1, 32, 28, 28), (1, 128, 7, 7)]
    assert small(out_indices=(-1, )).out_indices == (3, )
    seg = LocAtSwin(**TINY).eval()
    outs = seg(torch.randn(1, 3, 70, 90))  # padded to the patch, then to each window
    assert isinstance(outs, list)
    assert [o.shape[-2:] for o in outs] == [(18, 23), (9, 12), (5, 6), (3, 3)]


def test_frozen_stages_count_as_each_toolbox_counts_them():
    """mmpretrain's frozen_stages=k freezes stages 0..k, mmseg's the first k; each as the
    upstream class of that interface does (same set of frozen parameters)."""
    from mmpretrain.models import SwinTransformer as PretrainSwin
    from mmseg.models.backbones import SwinTransformer as SegSwin

    def frozen(model):
        model.train()
        return {n for n, p in model.named_parameters() if not p.requires_grad}

    mine = small(frozen_stages=1, out_indices=(0, 1, 2, 3), gaug=False)
    assert frozen(mine) == frozen(PretrainSwin(arch=dict(TINY), frozen_stages=1,
                                               out_indices=(0, 1, 2, 3)))
    assert not mine.stages[1].training and mine.stages[2].training
    seg_args = dict(TINY, frozen_stages=1)
    mine = LocAtSwin(gaug=False, **seg_args)
    assert frozen(mine) == frozen(SegSwin(**seg_args))
    assert not mine.stages[0].training and mine.stages[1].training
    everything = small(frozen_stages=3, out_indices=(3, ), norm_cfg=None, prr=False)
    everything.train()
    assert not any(p.requires_grad for p in everything.parameters())
    with pytest.raises(ValueError, match='out of range'):
        small(frozen_stages=4)


def test_layer_depth_matches_mmpretrain_swin():
    from mmpretrain.models import SwinTransformer
    model = small()
    upstream = SwinTransformer(arch=dict(TINY))
    names = ['backbone.' + n for n, _ in model.named_parameters()] + ['head.fc.weight']
    assert any('.gaug.' in n for n in names)
    for name in names:
        assert model.get_layer_depth(name, 'backbone.') == \
            upstream.get_layer_depth(name, 'backbone.'), name
    # Block j of stage i: sum(depths[:i]) + j + 1; stage i's merging: sum(depths[:i + 1]).
    assert model.get_layer_depth('backbone.stages.2.blocks.1.attn.w_msa.gaug.log_var.weight',
                                 'backbone.') == (6, 10)
    assert model.get_layer_depth('backbone.stages.1.downsample.reduction.weight',
                                 'backbone.') == (4, 10)
    assert model.get_layer_depth('backbone.norm3.weight', 'backbone.') == (9, 10)


def test_layer_decay_constructor_groups_by_swin_depth():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    segmentor = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type='LocAtSwin', **TINY),
            decode_head=dict(type='FCNHead', in_channels=128, in_index=3, channels=8,
                             num_convs=1, num_classes=3, norm_cfg=dict(type='BN'))))
    wrapper = build_optim_wrapper(
        segmentor,
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.01),
             constructor='LocAtLayerDecayOptimWrapperConstructor',
             paramwise_cfg=dict(layer_decay_rate=0.5)))
    lrs = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert lrs['decode_head.conv_seg.weight'] == 1.0
    assert lrs['backbone.stages.3.blocks.1.attn.w_msa.gaug.log_var.weight'] == 0.5
    assert lrs['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'] == 0.5**8
    assert lrs['backbone.patch_embed.projection.weight'] == 0.5**9


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    'kwargs,match',
    [(dict(arch='huge'), 'not in default archs'), (dict(out_indices=(4, )), 'out of range'),
     (dict(norm_cfg=None), 'prr=True'),
     (dict(embed_dims=32), 'use one interface'),
     (dict(arch=None, embed_dims=32, pretrained='x.pth', init_cfg=dict(type='Pretrained')),
      'cannot be set at the same time'),
     (dict(arch=None, embed_dims=32, patch_size=4, strides=(2, 2, 2, 2)), 'strides')])
def test_bad_construction_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)


def test_maps_smaller_than_a_window_need_padding():
    with pytest.raises(ValueError, match='pad_small_map=True'):
        small()(torch.randn(1, 3, 160, 160))  # last stage 5 x 5 < 7
    assert small(pad_small_map=True)(torch.randn(1, 3, 160, 160))[0].shape == (1, 128, 5, 5)


def test_mmseg_pretrained_argument_is_init_cfg():
    model = LocAtSwin(pretrained='ckpt.pth', **TINY)
    assert model.init_cfg == dict(type='Pretrained', checkpoint='ckpt.pth')


def test_gaug_layers_are_visible_to_the_attention_probe():
    """GAugStatsHook finds LocAtSwin's window attentions and reads window grids."""
    from locat_mm.engine.hooks import AttentionProbe, attention_layers
    model = small().eval()
    layers = attention_layers(model)
    assert len(layers) == 8
    seen = []
    with AttentionProbe(layers, lambda i, layer, q, k, grid, prefix: seen.append(
            (i, grid, prefix, tuple(q.shape)))):
        model(torch.randn(1, 3, 224, 224))
    assert seen[0] == (0, (7, 7), 0, (64, 2, 49, 8)) and len(seen) == 8


# ----------------------------------------------------------------------------- checkpoints
def to_timm_layout(state_dict: dict, num_stages: int = 4) -> dict:
    """This project's (mmpretrain's) Swin keys back in timm's (>= 0.9) layout, written out
    independently of the converter: merging opens the next stage, in timm's channel order."""
    timm = {}
    for key, value in state_dict.items():
        if key.endswith('relative_position_index'):
            continue
        down = re.match(r'^stages\.(\d+)\.downsample\.(.+)$', key)
        if down:
            # mmcv order: channel-major, 2 x 2 offsets row-major inside; timm: offsets
            # (0, 0), (1, 0), (0, 1), (1, 1), each a block of C channels.
            *lead, width = value.shape
            offsets = value.reshape(*lead, width // 4, 2, 2)  # (.., C, row, col)
            blocks = [offsets[..., 0, 0], offsets[..., 1, 0], offsets[..., 0, 1],
                      offsets[..., 1, 1]]
            timm[f'layers.{int(down.group(1)) + 1}.downsample.{down.group(2)}'] = \
                torch.cat(blocks, dim=-1)
            continue
        key = re.sub(r'^stages\.', 'layers.', key)
        key = key.replace('attn.w_msa.', 'attn.').replace('ffn.layers.0.0.', 'mlp.fc1.')
        key = key.replace('ffn.layers.1.', 'mlp.fc2.').replace('patch_embed.projection.',
                                                               'patch_embed.proj.')
        if re.match(r'^norm\d+\.', key):  # timm has the final norm only
            if not key.startswith(f'norm{num_stages - 1}.'):
                continue
            key = 'norm.' + key.split('.', 1)[1]
        timm[key] = value
    return timm


def test_timm_patch_merging_order():
    """The converted merging weights make mmcv's PatchMerging compute timm's merging."""
    from mmcv.cnn.bricks.transformer import PatchMerging
    torch.manual_seed(0)
    merge = PatchMerging(8, 16)
    norm_w, norm_b = torch.randn(32), torch.randn(32)
    reduction = torch.randn(16, 32)
    merge.norm.weight.data = timm_merge_to_unfold(norm_w)
    merge.norm.bias.data = timm_merge_to_unfold(norm_b)
    merge.reduction.weight.data = timm_merge_to_unfold(reduction)
    x = torch.randn(2, 6, 4, 8)  # (B, H, W, C)
    # timm: concatenate x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2].
    cat = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                    dim=-1)
    expected = F.layer_norm(cat, (32, ), norm_w, norm_b) @ reduction.T
    got, hw = merge(x.reshape(2, 24, 8), (6, 4))
    assert hw == (3, 2)
    torch.testing.assert_close(got, expected.reshape(2, 6, 16))


def test_timm_layout_loads_through_load_state_dict():
    torch.manual_seed(0)
    source = randomize(small(out_indices=(0, 3))).eval()
    timm = to_timm_layout(source.state_dict())
    assert 'layers.1.downsample.reduction.weight' in timm and 'norm.weight' in timm
    timm['layers.0.blocks.1.attn_mask'] = torch.zeros(1)  # old checkpoints stored the mask
    target = small(out_indices=(0, 3))
    result = target.load_state_dict(dict(timm), strict=False)
    assert result.missing_keys == ['norm0.weight', 'norm0.bias']
    assert result.unexpected_keys == []
    target.norm0.load_state_dict(source.norm0.state_dict())
    x = torch.randn(1, 3, 224, 224)
    for a, b in zip(target.eval()(x), source(x)):
        torch.testing.assert_close(a, b)
    # timm < 0.9 closed stage i with its merging (layers.i.downsample).
    old = {re.sub(r'^layers\.(\d+)\.downsample',
                  lambda m: f'layers.{int(m.group(1)) - 1}.downsample', k): v
           for k, v in timm.items()}
    assert convert_timm_swin_state_dict(old).keys() == convert_timm_swin_state_dict(timm).keys()
    for key, value in convert_timm_swin_state_dict(old).items():
        torch.testing.assert_close(value, convert_timm_swin_state_dict(timm)[key])


def test_init_cfg_reads_an_mmseg_model_and_explains_mismatches(tmp_path):
    """A whole mmseg/mmpretrain model's checkpoint (``backbone.*``) drives gaug=False; a plain
    Swin checkpoint is refused by LocAtSwin with what to do, and strict=False loads it."""
    torch.manual_seed(0)
    plain = randomize(small(gaug=False, prr=False))
    path = tmp_path / 'segmentor.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in plain.state_dict().items()},
                'meta': {}}, path)
    loaded = small(gaug=False, prr=False, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    loaded.init_weights()
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(loaded.eval()(x)[0], plain.eval()(x)[0])
    with pytest.raises(KeyError, match='gaug=False') as err:
        small(init_cfg=dict(type='Pretrained', checkpoint=str(path))).init_weights()
    assert 'Missing keys: stages.0.blocks.0.attn.w_msa.gaug.log_alpha.bias' in str(err.value)
    lenient = small(init_cfg=dict(type='Pretrained', checkpoint=str(path), strict=False))
    lenient.init_weights()
    torch.testing.assert_close(lenient.stages[2].blocks[1].attn.w_msa.qkv.weight,
                               plain.stages[2].blocks[1].attn.w_msa.qkv.weight)
    with pytest.raises(FileNotFoundError, match='init_cfg.checkpoint'):
        small(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'no.pth'))).init_weights()


def test_default_init_is_timm_like():
    model = small()
    model.init_weights()
    attn = model.stages[0].blocks[0].attn.w_msa
    assert 0.005 < attn.relative_position_bias_table.std() < 0.05
    assert attn.qkv.bias.abs().max() == 0 and attn.gaug.log_var.bias.abs().max() == 0
    assert 0.01 < attn.qkv.weight.std() < 0.03


@pytest.mark.parametrize('hw', [(8, 8), (7, 9)])
def test_patch_merging_is_mmcvs(hw):
    """The torch-only PatchMerging gives mmcv's result with mmcv's weights (odd sides padded
    at the bottom and right)."""
    from mmcv.cnn.bricks.transformer import PatchMerging as MMCVPatchMerging

    from locat_mm.layers.swin_blocks import PatchMerging
    upstream = randomize(MMCVPatchMerging(16, 32))
    ours = PatchMerging(16, 32)
    ours.load_state_dict(upstream.state_dict(), strict=True)
    x = torch.randn(2, hw[0] * hw[1], 16)
    (got, got_hw), (expected, expected_hw) = ours(x, hw), upstream(x, hw)
    assert torch.equal(got, expected) and tuple(got_hw) == tuple(expected_hw)
