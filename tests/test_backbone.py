"""LocAtViT's OpenMMLab interface: registries, outputs, freezing, checkpoints, bad input."""
import numpy as np
import pytest
import torch
from resize_oracle import resize_pos_embed_oracle

import locat_mm  # noqa: F401  (registers LocAtViT)
from locat_mm import LocAtViT

TINY = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)


def small(**kwargs) -> LocAtViT:
    kwargs.setdefault('arch', TINY)
    kwargs.setdefault('img_size', 64)
    return LocAtViT(**kwargs)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg'])
def test_both_toolbox_registries_build_it(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(dict(type='LocAtViT', arch=TINY, img_size=64))
    assert isinstance(model, LocAtViT)


def test_own_scope_builds_from_any_registry():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='locat_mm.LocAtViT', arch=TINY, img_size=64))
    assert isinstance(model, LocAtViT)


def test_builds_inside_both_toolboxes_models():
    from mmpretrain.registry import MODELS as PRETRAIN
    from mmseg.registry import MODELS as SEG
    classifier = PRETRAIN.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='LocAtViT', arch=TINY, img_size=64),
            head=dict(type='VisionTransformerClsHead', num_classes=5, in_channels=32)))
    assert classifier.extract_feat(torch.randn(2, 3, 64, 64))[0].shape == (2, 32)
    segmentor = SEG.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='LocAtViT', arch=TINY, img_size=64, out_type='featmap',
                final_norm=False),
            decode_head=dict(
                type='FCNHead', in_channels=32, channels=16, num_convs=1, num_classes=4,
                norm_cfg=dict(type='BN'))))
    out = segmentor(torch.randn(2, 3, 64, 64), mode='tensor')
    assert out.shape == (2, 4, 4, 4)


@pytest.mark.parametrize('out_type,shape', [('cls_token', (2, 32)), ('avg_featmap', (2, 32)),
                                            ('featmap', (2, 32, 4, 5)),
                                            ('raw', (2, 1 + 4 * 5, 32))])
def test_out_types(out_type, shape):
    model = small(out_type=out_type, out_indices=(0, -1)).eval()
    outs = model(torch.randn(2, 3, 64, 80))
    assert len(outs) == 2 and all(o.shape == shape for o in outs)


def test_any_input_size_is_padded_to_the_patch():
    model = small(out_type='featmap').eval()
    (out,) = model(torch.randn(1, 3, 70, 33))
    assert out.shape == (1, 32, 5, 3)  # ceil(70 / 16), ceil(33 / 16)
    x = torch.randn(1, 3, 70, 33)
    padded = torch.nn.functional.pad(x, (0, 15, 0, 10))
    torch.testing.assert_close(model(x)[0], model(padded)[0])


def test_prr_only_refines_pooled_outputs():
    torch.manual_seed(0)
    with_prr = small(out_type='cls_token').eval()
    without = small(out_type='cls_token', prr=False).eval()
    without.load_state_dict(with_prr.state_dict())
    x = torch.randn(2, 3, 64, 64)
    tokens = with_prr.embed(x)[0]
    grid = (4, 4)
    for layer in with_prr.layers:
        tokens = layer(tokens, grid, 1)
    tokens = with_prr.ln1(tokens)
    heads = tokens.reshape(2, 17, 2, 16).transpose(1, 2)
    weights = (heads @ heads.transpose(-2, -1) / 4.0).softmax(-1)
    refined = (weights @ heads).transpose(1, 2).reshape(2, 17, 32)
    torch.testing.assert_close(with_prr(x)[0], refined[:, 0])
    torch.testing.assert_close(without(x)[0], tokens[:, 0])


def test_prr_refines_the_pooled_patches_of_avg_featmap():
    torch.manual_seed(0)
    model = small(out_type='avg_featmap', num_register_tokens=2).eval()
    x = torch.randn(2, 3, 64, 64)
    tokens = model.embed(x)[0]
    for layer in model.layers:
        tokens = layer(tokens, (4, 4), 3)
    tokens = model.ln1(tokens)
    heads = tokens.reshape(2, 19, 2, 16).transpose(1, 2)
    weights = (heads @ heads.transpose(-2, -1) / 4.0).softmax(-1)
    refined = (weights @ heads).transpose(1, 2).reshape(2, 19, 32)
    torch.testing.assert_close(model(x)[0], model.ln2(refined[:, 3:].mean(1)))


@pytest.mark.parametrize('out_type', ['cls_token', 'avg_featmap'])
def test_prr_costs_only_the_pooled_rows(out_type):
    """PRR's attention is computed for the pooled queries only: the class token's single row,
    or the patch rows; never for tokens the output drops."""
    from mmengine.analysis import FlopAnalyzer
    import locat_mm.engine  # noqa: F401  (attention FLOP handles)
    with_prr = small(out_type=out_type, num_register_tokens=2).eval()
    without = small(out_type=out_type, num_register_tokens=2, prr=False).eval()
    x = torch.randn(2, 3, 64, 64)
    flops = [FlopAnalyzer(model, (x, )).total() for model in (with_prr, without)]
    queries = 1 if out_type == 'cls_token' else 16
    # Multiply-adds of q k^T and of the product with v: 2 images, 2 heads of 16 channels,
    # 19 keys (class token, 2 registers, 16 patches).
    assert flops[0] - flops[1] == 2 * 2 * queries * 19 * (16 + 16)


def test_frozen_stages_freeze_and_stay_in_eval():
    model = small(frozen_stages=2, drop_rate=0.1)
    model.train()
    assert not model.pos_embed.requires_grad and not model.cls_token.requires_grad
    assert all(not p.requires_grad for p in model.patch_embed.parameters())
    assert all(not p.requires_grad for p in model.layers[1].parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    assert not model.layers[0].training and model.layers[2].training
    everything = small(frozen_stages=3)
    everything.train()
    assert not any(p.requires_grad for p in everything.parameters())


def test_layer_depth_matches_mmpretrain_convention():
    model = small()
    assert model.get_layer_depth('backbone.pos_embed', 'backbone.') == (0, 5)
    assert model.get_layer_depth('backbone.patch_embed.projection.weight', 'backbone.') == (0, 5)
    assert model.get_layer_depth('backbone.layers.1.attn.gaug.log_var.weight',
                                 'backbone.') == (2, 5)
    assert model.get_layer_depth('backbone.ln1.weight', 'backbone.') == (4, 5)
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == (4, 5)


def test_patch_embedding_has_a_bias():
    assert small().patch_embed.projection.bias is not None


@pytest.mark.parametrize(
    'kwargs,match',
    [(dict(out_type='tokens'), 'Unsupported out_type'),
     (dict(out_type='cls_token', with_cls_token=False), 'with_cls_token must be True'),
     (dict(arch='enormous'), 'not in default archs'), (dict(out_indices=(5, )), 'out of range'),
     (dict(arch=dict(embed_dims=30, num_layers=1, num_heads=4, feedforward_channels=8)),
      'divisible'), (dict(img_size=100), 'not a multiple of the patch stride'),
     (dict(img_size=(96, 72), patch_size=16), 'not a multiple of the patch stride')])
def test_bad_construction_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)


def test_wrong_input_channels_are_explained():
    with pytest.raises(ValueError, match=r'expected images of shape \(B, 3, H, W\)'):
        small()(torch.randn(1, 1, 64, 64))


# ----------------------------------------------------------------------------- checkpoints
def test_loads_mmpretrain_vit_checkpoint_as_the_baseline(tmp_path):
    """Our layout is mmpretrain's: its ViT weights drive the plain baseline unchanged."""
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(arch=dict(TINY), img_size=64, patch_size=16)
    vit.init_weights()
    vit.eval()
    path = tmp_path / 'vit.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in vit.state_dict().items()}}, path)
    model = small(gaug=False, prr=False, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x)[0], vit(x)[0])


def test_checkpoint_of_another_model_names_its_keys(tmp_path):
    path = tmp_path / 'plain.pth'
    torch.save(small(gaug=False).state_dict(), path)
    model = small(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(KeyError) as err:
        model.init_weights()
    assert 'Missing keys: layers.0.attn.gaug.log_alpha.bias' in str(err.value)
    assert 'gaug=False' in str(err.value)
    other = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)}, other)
    with pytest.raises(KeyError, match='Unexpected keys: conv1.weight, fc.weight'):
        small(init_cfg=dict(type='Pretrained', checkpoint=str(other))).init_weights()
    # strict=False logs instead and still loads what fits.
    lenient = small(init_cfg=dict(type='Pretrained', checkpoint=str(path), strict=False))
    lenient.init_weights()
    torch.testing.assert_close(lenient.pos_embed, torch.load(path)['pos_embed'])


def test_missing_checkpoint_file_is_explained(tmp_path):
    model = small(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(FileNotFoundError, match='init_cfg.checkpoint'):
        model.init_weights()


@pytest.mark.parametrize('antialias', [True, False])
def test_position_embedding_of_another_grid_is_resized(tmp_path, antialias):
    """A 14 x 14 embedding loaded into 4 x 4 and 6 x 10 grids, against an independent resize."""
    source = small(img_size=224)  # grid 14
    source.init_weights()
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    for img_size in (64, (96, 160)):
        target = small(img_size=img_size, pos_embed_antialias=antialias,
                       init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        target.init_weights()
        want = resize_pos_embed_oracle(source.pos_embed.detach(), (14, 14),
                                       target.patch_resolution, antialias=antialias)
        assert target.pos_embed.shape == want.shape
        np.testing.assert_allclose(target.pos_embed.detach().numpy(), want, rtol=0, atol=1e-6)


def test_prefix_selects_the_backbone(tmp_path):
    source = small()
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': {'model.enc.' + k: v for k, v in source.state_dict().items()}},
               path)
    target = small(init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='model.enc'))
    target.init_weights()
    torch.testing.assert_close(target.layers[2].attn.gaug.log_var.weight,
                               source.layers[2].attn.gaug.log_var.weight)
    with pytest.raises(ValueError, match="no key starting with 'missing.'"):
        small(init_cfg=dict(type='Pretrained', checkpoint=str(path),
                            prefix='missing')).init_weights()


def test_timm_layout_loads_through_load_state_dict(reference_fixture):
    """The authors' key layout, as their code wrote it (the shared fixture's state dict),
    loads through plain ``load_state_dict`` (e.g. ``load_from``) and gives their logits."""
    state = reference_fixture['state_dict']
    model = LocAtViT(
        arch=dict(embed_dims=128, num_layers=3, num_heads=2, feedforward_channels=512),
        out_type='cls_token')
    result = model.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith('head.')}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model.eval()
    for case in reference_fixture['cases']:
        with torch.no_grad():
            logits = model(case['input'])[0] @ state['head.weight'].T + state['head.bias']
        torch.testing.assert_close(logits, case['logits'], rtol=0, atol=1e-5)
