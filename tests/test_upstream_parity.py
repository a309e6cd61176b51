"""LocAtViT(gaug=False, prr=False) is mmpretrain's and mmseg's VisionTransformer.

Same constructor arguments, one random state dict loaded strictly into both (mmseg's through
its own key layout), same outputs; and the interface glue (toolbox defaults, ``pretrained=``,
freezing, layer depth, initialisation, ``with_cp``).
"""
import copy
import math

import pytest
import torch

import locat_mm  # noqa: F401  (registers LocAtViT)
from locat_mm import LocAtViT
from locat_mm.models.ckpt_convert import GAUG_GRID_KEY

TINY = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)
BASELINE = dict(gaug=False, prr=False, pos_embed_antialias=False)
# Run at the built size and at one the position embedding is resized (and padded) for.
INPUT_SIZES = ((32, 32), (40, 56))


def random_state_dict(model: torch.nn.Module, seed: int = 0) -> dict:
    """Every tensor of ``model``'s state dict replaced by normal noise (norms included)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=generator) * 0.5 if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }


def assert_same_outputs(ours, theirs, x: torch.Tensor, exact: bool = True) -> None:
    """Identical outputs; or, with ``exact=False``, within 1e-6 of the output scale.

    mmseg's blocks run nn.MultiheadAttention (a fused kernel in eval mode) where ours run
    scaled_dot_product_attention: the same maths in another order of float32 operations.
    """
    with torch.no_grad():
        got, want = ours(x), theirs(x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if not isinstance(w, torch.Tensor):  # mmseg's [featmap, cls_token] pairs
            assert len(g) == len(w) == 2
            g, w = torch.cat([t.flatten() for t in g]), torch.cat([t.flatten() for t in w])
        assert g.shape == w.shape
        if exact:
            assert torch.equal(g, w), (g - w).abs().max()
        else:
            assert (g - w).abs().max() <= 1e-6 * max(1.0, w.abs().max().item())


# ----------------------------------------------------------------------------- mmpretrain
PRETRAIN_GRID = {
    'cls_token': dict(out_type='cls_token'),
    'featmap': dict(out_type='featmap', out_indices=[0, -1]),
    'avg_featmap': dict(out_type='avg_featmap', out_indices=(1, 2)),
    'raw': dict(out_type='raw'),
    'no_final_norm': dict(out_type='featmap', final_norm=False),
    'pre_norm': dict(pre_norm=True),
    'layer_scale': dict(layer_scale_init_value=0.1, out_type='avg_featmap'),
    'norm_cfg': dict(norm_cfg=dict(type='LN', eps=1e-5)),
    'patch_norm_no_bias': dict(patch_cfg=dict(norm_cfg=dict(type='LN'), bias=False)),
    'patch_overlap': dict(patch_cfg=dict(kernel_size=16, stride=8), out_type='featmap'),
    'layer_cfgs': dict(layer_cfgs=dict(num_fcs=3, act_cfg=dict(type='ReLU'))),
    'layer_cfgs_list': dict(layer_cfgs=[
        dict(feedforward_channels=16), dict(layer_scale_init_value=0.5),
        dict(norm_cfg=dict(type='LN', eps=1e-3), qkv_bias=False)]),
    'no_cls_token': dict(with_cls_token=False, out_type='featmap'),
    'no_cls_token_avg': dict(with_cls_token=False, out_type='avg_featmap'),
    'no_qkv_bias': dict(qkv_bias=False),
    'bilinear': dict(interpolate_mode='bilinear', out_type='featmap'),
    'frozen': dict(frozen_stages=2, drop_rate=0.1, drop_path_rate=0.1),
}


def _pretrain_pair(args: dict):
    from mmpretrain.models import VisionTransformer
    theirs = VisionTransformer(**copy.deepcopy(args))  # it edits out_indices in place
    ours = LocAtViT(**args, **BASELINE)
    state = random_state_dict(theirs)
    theirs.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    return ours, theirs


@pytest.mark.parametrize('case', sorted(PRETRAIN_GRID))
def test_matches_mmpretrain(case):
    args = dict(arch=dict(TINY), img_size=32, patch_size=16, **PRETRAIN_GRID[case])
    ours, theirs = _pretrain_pair(args)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    # The same parameters train. (Frozen modules also stay in eval mode here, as mmpretrain's
    # docstring says; its own train() puts them back in training mode.)
    ours.train(), theirs.train()
    assert {n: p.requires_grad for n, p in ours.named_parameters()} == \
        {n: p.requires_grad for n, p in theirs.named_parameters()}
    for name, _ in theirs.named_parameters():
        assert ours.get_layer_depth(name) == theirs.get_layer_depth(name)
    ours.eval(), theirs.eval()
    for size in INPUT_SIZES:
        assert_same_outputs(ours, theirs, torch.randn(2, 3, *size))


@pytest.mark.parametrize('arch', ['deit-t', 'deit-s'])
def test_matches_mmpretrain_named_arch(arch):
    ours, theirs = _pretrain_pair(dict(arch=arch, img_size=32))
    ours.eval(), theirs.eval()
    assert_same_outputs(ours, theirs, torch.randn(1, 3, 32, 48))


def test_arch_zoo_is_mmpretrains():
    """Every upstream name and alias means the same architecture ('s' is not DeiT-S)."""
    from mmpretrain.models import VisionTransformer
    for name, settings in VisionTransformer.arch_zoo.items():
        assert LocAtViT.arch_zoo[name] == settings, name
    assert LocAtViT.arch_zoo['deit-s']['embed_dims'] == 384  # the paper's S
    assert LocAtViT.arch_zoo['s']['num_layers'] == 8


def test_frozen_everything_like_mmpretrain():
    ours, theirs = _pretrain_pair(
        dict(arch=dict(TINY), img_size=32, frozen_stages=3, out_type='avg_featmap',
             pre_norm=True))
    ours.train(), theirs.train()
    assert not any(p.requires_grad for p in ours.parameters())
    assert not any(p.requires_grad for p in theirs.parameters())
    assert not ours.ln1.training and not ours.ln2.training


# ----------------------------------------------------------------------------- mmseg
SEG_TINY = dict(embed_dims=32, num_layers=3, num_heads=2, mlp_ratio=2, img_size=32,
                patch_size=16)
SEG_GRID = {
    'defaults': dict(),
    'out_indices_final_norm': dict(out_indices=(0, 2), final_norm=True),
    'output_cls_token': dict(output_cls_token=True, out_indices=(1, 2)),
    'out_origin': dict(out_origin=True),
    'no_cls_token': dict(with_cls_token=False, out_origin=True),
    'pre_norm': dict(pre_norm=True),
    'patch_norm_bias': dict(patch_norm=True, patch_bias=True),
    'no_qkv_bias': dict(qkv_bias=False),
    'mlp': dict(num_fcs=3, act_cfg=dict(type='ReLU'), mlp_ratio=3),
    'norm_cfg': dict(norm_cfg=dict(type='LN', eps=1e-6)),
    'patch_pad_same': dict(patch_pad='same'),
    'frozen_exclude': dict(frozen_exclude=['layers.2', 'ln1'], final_norm=True),
    'norm_eval': dict(norm_eval=True, drop_path_rate=0.1),
}


def _seg_pair(args: dict):
    from mmseg.models.backbones import VisionTransformer
    theirs = VisionTransformer(**args)
    ours = LocAtViT(**args, **BASELINE)
    state = random_state_dict(theirs)
    theirs.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)  # mmseg's layout, converted by the load hook
    return ours, theirs, state


@pytest.mark.parametrize('case', sorted(SEG_GRID))
def test_matches_mmseg(case):
    ours, theirs, _ = _seg_pair({**SEG_TINY, **SEG_GRID[case]})
    assert ours.toolbox == 'mmseg'
    ours.train(), theirs.train()
    trains = {n: p.requires_grad for n, p in theirs.named_parameters()}
    for name, param in ours.named_parameters():
        mmseg_name = (name.replace('.attn.qkv.', '.attn.attn.in_proj_')
                      .replace('.attn.proj.', '.attn.attn.out_proj.')
                      .replace('pre_norm.', 'ln_pre.'))
        assert param.requires_grad == trains[mmseg_name], name
    their_norms = {n.replace('ln_pre', 'pre_norm'): m.training
                   for n, m in theirs.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    assert their_norms == {n: m.training for n, m in ours.named_modules()
                           if isinstance(m, torch.nn.LayerNorm)}
    ours.eval(), theirs.eval()
    for size in INPUT_SIZES:
        assert_same_outputs(ours, theirs, torch.randn(2, 3, *size), exact=False)


def test_mmseg_checkpoint_and_pretrained_argument(tmp_path):
    """An mmseg segmentor's checkpoint loads through ``pretrained=`` (mmseg's way)."""
    ours, theirs, state = _seg_pair(dict(SEG_TINY))
    path = tmp_path / 'segmentor.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in state.items()}}, path)
    loaded = LocAtViT(**SEG_TINY, **BASELINE, pretrained=str(path))
    assert loaded.init_cfg == dict(type='Pretrained', checkpoint=str(path))
    loaded.init_weights()
    loaded.eval(), theirs.eval()
    assert_same_outputs(loaded, theirs, torch.randn(1, 3, 48, 32), exact=False)
    with pytest.raises(ValueError, match='cannot be set at the same time'):
        LocAtViT(**SEG_TINY, pretrained=str(path), init_cfg=dict(type='Pretrained',
                                                                 checkpoint=str(path)))
    # Another model's checkpoint: every key that does not fit is named.
    wrong = LocAtViT(**{**SEG_TINY, 'num_layers': 2}, **BASELINE, pretrained=str(path))
    with pytest.raises(KeyError, match=r'Unexpected keys: layers\.2\.'):
        wrong.init_weights()


# ----------------------------------------------------------------------------- interfaces
def test_mmseg_arguments_give_mmseg_defaults():
    model = LocAtViT(embed_dims=32, num_layers=2, num_heads=2, img_size=32)
    assert model.toolbox == 'mmseg' and model.arch_settings['feedforward_channels'] == 128
    assert not model.final_norm and model.patch_embed.projection.bias is None
    assert model.layers[0].ln1.eps == 1e-5 and model.layers[0].attn.proj.bias is not None
    (out, ) = model.eval()(torch.randn(1, 3, 32, 48))
    assert out.shape == (1, 32, 2, 3) and out.is_contiguous()
    pretrain = LocAtViT(arch=TINY, img_size=32)
    assert pretrain.toolbox == 'mmpretrain' and pretrain.final_norm
    assert pretrain.layers[0].ln1.eps == 1e-6 and pretrain.patch_embed.projection.bias is not None
    assert pretrain.eval()(torch.randn(1, 3, 32, 32))[0].shape == (1, 32)


def test_default_scope_decides_when_the_arguments_do_not():
    from mmengine.registry import DefaultScope
    assert LocAtViT(img_size=32, patch_size=16).toolbox == 'mmpretrain'
    DefaultScope.get_instance('test-mmseg-scope', scope_name='mmseg')
    assert LocAtViT(img_size=32, patch_size=16).toolbox == 'mmseg'
    # Explicit arguments of one interface win over the scope, and toolbox over both.
    assert LocAtViT(arch=TINY, img_size=32).toolbox == 'mmpretrain'
    assert LocAtViT(arch=TINY, norm_eval=True, toolbox='mmpretrain').toolbox == 'mmpretrain'


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='deit-t', embed_dims=192, toolbox='mmseg'), 'both define the architecture'),
    (dict(arch='deit-t', embed_dims=192), "set toolbox='mmseg' or 'mmpretrain'"),
    (dict(arch=TINY, norm_eval=True), "set toolbox='mmseg' or 'mmpretrain'"),
    (dict(arch=TINY, toolbox='mmdet'), 'toolbox must be one of'),
    (dict(arch=TINY, layer_cfgs=dict(ffn_type='swiglu_fused')), 'SwiGLU'),
    (dict(arch=TINY, layer_cfgs=dict(bias=True)), "keys \\['bias'\\]"),
    (dict(arch=TINY, init_cfg=dict(type='Pretrained_Part', checkpoint='sam.pth')),
     'Pretrained_Part'),
    (dict(arch=TINY, out_type='cls_token', output_cls_token=True, toolbox='mmseg'),
     'output_cls_token=True needs'),
])
def test_interface_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocAtViT(img_size=32, **kwargs)


def flat_outputs(model: torch.nn.Module, x: torch.Tensor) -> list:
    """Every output tensor of ``model(x)`` (mmseg's [featmap, cls_token] pairs flattened)."""
    with torch.no_grad():
        outs = model(x)
    return [t for out in outs for t in (out if isinstance(out, (list, tuple)) else [out])]


GAUG_GRID = [('pretrain', name, {**dict(arch=dict(TINY), img_size=32), **args})
             for name, args in PRETRAIN_GRID.items()]
GAUG_GRID += [('pretrain', 'pre_norm_layer_scale',
               dict(arch=dict(TINY), img_size=32, pre_norm=True, layer_scale_init_value=0.1))]
GAUG_GRID += [('seg', name, {**SEG_TINY, **args}) for name, args in SEG_GRID.items()]


@pytest.mark.parametrize('args', [args for *_, args in GAUG_GRID],
                         ids=[f'{toolbox}-{name}' for toolbox, name, _ in GAUG_GRID])
def test_gaug_accepts_every_interface_argument(args):
    """The grids above with GAug and PRR on (the default): GAug adds its bias and nothing else.

    Against the same model with ``gaug=False`` and the same weights: outputs of the same
    structure and shapes, all finite; they differ (the bias is applied), and with the amplitude
    softplus(-100) ~ 0 they are equal (the bias is all GAug changes).
    """
    torch.manual_seed(0)
    ours = LocAtViT(**copy.deepcopy(args)).eval()
    plain = LocAtViT(**copy.deepcopy(args), gaug=False).eval()
    assert all(layer.attn.gaug is not None for layer in ours.layers)
    assert all(layer.attn.gaug is None for layer in plain.layers)
    missing, unexpected = plain.load_state_dict(ours.state_dict(), strict=False)
    # GAug's own keys: its per-layer maps, and the grid they were trained on (a buffer that
    # only GAug models carry, so that it travels with their weights).
    assert not missing and GAUG_GRID_KEY in unexpected
    assert all('.attn.gaug.' in k for k in unexpected if k != GAUG_GRID_KEY)
    assert any('.attn.gaug.' in k for k in unexpected)
    x = torch.randn(2, 3, 40, 56)
    got, want = flat_outputs(ours, x), flat_outputs(plain, x)
    assert [t.shape for t in got] == [t.shape for t in want] and got
    assert all(torch.isfinite(t).all() for t in got)
    scale = max(t.abs().max().item() for t in want)
    moved = max((g - w).abs().max().item() for g, w in zip(got, want))
    assert moved > 1e-3 * scale, 'GAug did not change the outputs'
    with torch.no_grad():
        for layer in ours.layers:
            layer.attn.gaug.log_alpha.weight.zero_()
            layer.attn.gaug.log_alpha.bias.fill_(-100.0)
    for g, w in zip(flat_outputs(ours, x), want):
        assert (g - w).abs().max() <= 1e-5 * scale


# ----------------------------------------------------------------------------- initialisation
def test_upstream_initialisation_with_an_init_cfg_list():
    """mmpretrain's base-config init_cfg: pos_embed/cls_token are trunc-normal, MLPs xavier."""
    torch.manual_seed(0)
    model = LocAtViT(
        arch='deit-t',
        img_size=224,
        init_cfg=[dict(type='Kaiming', layer='Conv2d', mode='fan_in', nonlinearity='linear')])
    model.init_weights()
    for param in (model.pos_embed, model.cls_token):
        assert 0.015 < param.std().item() < 0.025
    conv = model.patch_embed.projection.weight  # Kaiming fan_in, linear gain
    assert abs(conv.std().item() - 1 / math.sqrt(3 * 16 * 16)) < 0.005
    fc1 = model.layers[0].ffn.layers[0][0]
    bound = math.sqrt(6 / (192 + 768))
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.95 * bound
    assert 0 < fc1.bias.abs().max() < 1e-4
    # mmseg mode: the init_cfg and trunc-normal embeddings, the MLPs as the init_cfg left them.
    seg = LocAtViT(embed_dims=192, num_layers=2, num_heads=3, init_cfg=[
        dict(type='Constant', layer='Linear', val=0.5)])
    seg.init_weights()
    assert 0.015 < seg.pos_embed.std().item() < 0.025
    assert (seg.layers[0].ffn.layers[0][0].weight == 0.5).all()


def test_no_init_cfg_is_the_authors_initialisation():
    torch.manual_seed(0)
    model = LocAtViT(arch='deit-t', num_register_tokens=4)
    model.init_weights()
    qkv = model.layers[0].attn.qkv
    assert 0.015 < qkv.weight.std().item() < 0.025 and (qkv.bias == 0).all()
    assert model.cls_token.abs().max() < 1e-5 and model.reg_token.abs().max() < 1e-5


# ----------------------------------------------------------------------------- with_cp
def test_with_cp_recomputes_blocks_and_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = LocAtViT(arch=dict(TINY), img_size=32, out_type='avg_featmap', drop_path_rate=0.2)
    plain.init_weights()
    ckpt = LocAtViT(arch=dict(TINY), img_size=32, out_type='avg_featmap', drop_path_rate=0.2,
                    with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    calls = []
    ckpt.layers[1].attn.register_forward_pre_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 3, 40, 40)
    grads = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(1)  # the same stochastic-depth draws
        model(x)[0].square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert len(calls) == 2  # attention ran again in backward: the block was checkpointed
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=0, atol=1e-6, msg=name)
    assert grads[1]['layers.1.attn.gaug.log_alpha.weight'].abs().sum() > 0


# ----------------------------------------------------------------------------- other grids
def test_upstream_checkpoints_of_another_grid_give_upstreams_outputs(tmp_path):
    """pos_embed_antialias=False: a checkpoint trained at 64 px, loaded for 32 px and run at
    48 x 40, gives what mmpretrain's and mmseg's own classes give."""
    from mmpretrain.models import VisionTransformer as PretrainViT
    from mmseg.models.backbones import VisionTransformer as SegViT
    x = torch.randn(1, 3, 48, 40)

    source = PretrainViT(arch=dict(TINY), img_size=64, out_type='featmap')
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': random_state_dict(source)}, path)
    theirs = PretrainViT(arch=dict(TINY), img_size=32, out_type='featmap',
                         init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    theirs.init_weights()
    ours = LocAtViT(arch=dict(TINY), img_size=32, out_type='featmap', **BASELINE,
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    ours.init_weights()
    ours.eval(), theirs.eval()
    assert_same_outputs(ours, theirs, x)

    seg_source = SegViT(**{**SEG_TINY, 'img_size': 64})
    path = tmp_path / 'seg.pth'
    torch.save({'state_dict': random_state_dict(seg_source)}, path)
    theirs = SegViT(**SEG_TINY, pretrained=str(path))
    theirs.init_weights()
    ours = LocAtViT(**SEG_TINY, **BASELINE, pretrained=str(path))
    ours.init_weights()
    ours.eval(), theirs.eval()
    assert_same_outputs(ours, theirs, x, exact=False)


def test_mmseg_config_with_a_timm_vit_checkpoint_names_what_differs(tmp_path):
    """mmseg loads such files leniently; here the keys that do not fit are named, with hints."""
    vit = LocAtViT(arch=dict(TINY), img_size=32, gaug=False)  # a plain ViT, patch bias on
    path = tmp_path / 'vit.pth'
    torch.save(vit.state_dict(), path)
    model = LocAtViT(**SEG_TINY, pretrained=str(path))  # GAug on, no patch bias (mmseg)
    with pytest.raises(KeyError) as err:
        model.init_weights()
    message = str(err.value)
    assert 'Missing keys: layers.0.attn.gaug.log_alpha.bias' in message
    assert 'Unexpected keys: patch_embed.projection.bias' in message
    assert 'patch_bias=True' in message and 'strict=False' in message
