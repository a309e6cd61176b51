"""The grids a LocAtViT checkpoint was trained on travel with its weights (issue 16).

GAug's constants (K, eps, the distance floor, the variance scale) follow the grid the model
was trained on, not the ``img_size`` of the config that loads it; a position embedding is
resized from the grid it was saved on, which a checkpoint records when its token count cannot
tell it (16 x 64 = 32 x 32 tokens).
"""
import contextlib
import logging
import os.path as osp

import pytest
import torch
from mmengine.logging import MMLogger

from conftest import SHARED

from locat_mm import LocAtViT
from locat_mm.layers import resize_pos_embed

SMALL = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


@contextlib.contextmanager
def logged():
    """The messages mmengine's current logger emits inside the block."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _fixture_arch(config: dict) -> dict:
    return dict(embed_dims=config['embed_dim'], num_layers=config['depth'],
                num_heads=config['num_heads'], feedforward_channels=4 * config['embed_dim'])


def _features(model: LocAtViT, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)[0]


def _authors_checkpoint(tmp_path, state_dict: dict, name: str) -> str:
    path = tmp_path / name
    torch.save({'model': state_dict}, path)
    return str(path)


def test_a_224px_checkpoint_in_a_512px_model_gives_the_authors_outputs(reference_fixture,
                                                                       tmp_path):
    """The reference fixture (a 224-px LocAtViT) built with ``img_size=512`` (mmseg's ViT
    configs) gives the authors' block features at 512 x 512.

    The authors' outputs at 512 px are those of the model built with ``img_size=224``: the
    fixture's cases (224, 96 x 160, 200 x 264) show that model reproduces the authors' code to
    1e-6 at its own size and at others, where it runs GAug on the 14 x 14 grid with variances
    scaled by min(H, W) / 14 and resizes the position embedding from 14 x 14 to the input's
    grid (SPEC sections 1 and 3), which is what the authors' code does at 512 px. The 512-px
    model resizes the same embedding 14 -> 32 once at load time, so only GAug's grid can
    differ; before this fix it ran GAug as a 32-grid model (features off by 3.4e-3).
    """
    config = reference_fixture['config']
    checkpoint = _authors_checkpoint(tmp_path, reference_fixture['state_dict'], 'authors.pth')
    kwargs = dict(arch=_fixture_arch(config), patch_size=config['patch_size'],
                  out_type='featmap', final_norm=False, out_indices=(1, 2),
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    authors = LocAtViT(img_size=config['img_size'], **kwargs)
    authors.init_weights()
    seg = LocAtViT(img_size=512, **kwargs)
    with logged() as records:
        seg.init_weights()
    assert seg.gaug_base_grid.tolist() == [14, 14]
    assert seg.layers[0].attn.gaug.base_grid == (14, 14)
    notes = [r.getMessage() for r in records if 'trained on' in r.getMessage()]
    assert len(notes) == 1 and '14x14' in notes[0] and '32x32' in notes[0], notes
    torch.manual_seed(0)
    x = torch.randn(1, 3, 512, 512)
    expected = _features(authors, x)
    worst = (_features(seg, x) - expected).abs().max().item()
    assert worst <= 1e-5, worst

    # The grid travels on: the 512-px model's own checkpoint keeps it, whatever img_size reads it.
    path = tmp_path / 'seg.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in seg.state_dict().items()}}, path)
    again = LocAtViT(img_size=384, **{**kwargs, 'init_cfg': dict(type='Pretrained',
                                                                   checkpoint=str(path))})
    again.init_weights()
    assert again.gaug_base_grid.tolist() == [14, 14]
    assert again.layers[1].attn.gaug.base_grid == (14, 14)
    reloaded = LocAtViT(img_size=512, **{**kwargs, 'init_cfg': None})
    reloaded.load_state_dict(seg.state_dict(), strict=True)
    assert reloaded.layers[1].attn.gaug.base_grid == (14, 14)
    assert torch.equal(_features(reloaded, x), _features(seg, x))


def test_a_plain_checkpoint_leaves_gaug_on_the_img_size_grid(tmp_path):
    """A plain ViT's weights have no GAug to keep a grid for: GAug starts on img_size's."""
    plain = LocAtViT(arch=SMALL, img_size=64, patch_size=16, gaug=False, prr=False)
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': plain.state_dict()}, path)
    model = LocAtViT(arch=SMALL, img_size=128, patch_size=16,
                     init_cfg=dict(type='Pretrained', checkpoint=str(path), strict=False))
    model.init_weights()
    assert model.gaug_base_grid.tolist() == [8, 8]
    assert model.layers[0].attn.gaug.base_grid == (8, 8)


def test_no_position_embedding_grid_from_the_checkpoint_else_img_size(tmp_path):
    """No position embedding to read the grid from: the grid the checkpoint saved (LocAtViT's
    ``gaug_base_grid``) is used; an authors' file has none, and GAug then runs on img_size's
    grid, with a warning that says how to change it."""
    path = osp.join(SHARED, 'fixtures', 'locatvit_nopos_reference_small.pt')
    fixture = torch.load(path, weights_only=False)
    config = fixture['config']
    authors = _authors_checkpoint(tmp_path, fixture['state_dict'], 'nopos.pth')
    kwargs = dict(arch=_fixture_arch(config), patch_size=config.get('patch_size', 16),
                  with_pos_embed=False, out_type='featmap', final_norm=False)
    model = LocAtViT(img_size=512, init_cfg=dict(type='Pretrained', checkpoint=authors),
                     **kwargs)
    with logged() as records:
        model.init_weights()
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any('records no GAug grid' in m and 'img_size' in m for m in warnings), warnings
    assert model.gaug_base_grid.tolist() == [32, 32]

    trained = LocAtViT(img_size=config['img_size'],
                       init_cfg=dict(type='Pretrained', checkpoint=authors), **kwargs)
    trained.init_weights()
    saved = tmp_path / 'ours.pth'
    torch.save({'state_dict': trained.state_dict()}, saved)
    model = LocAtViT(img_size=512, init_cfg=dict(type='Pretrained', checkpoint=str(saved)),
                     **kwargs)
    model.init_weights()
    assert model.gaug_base_grid.tolist() == [14, 14]
    x = torch.randn(1, 3, 512, 512)
    assert (_features(model, x) - _features(trained, x)).abs().max() <= 1e-5


def test_a_non_square_grid_with_a_square_token_count_is_resized_from_its_own_grid(tmp_path):
    """16 x 64 holds as many tokens as 32 x 32: the grid the checkpoint records decides."""
    torch.manual_seed(0)
    wide = LocAtViT(arch=SMALL, img_size=(256, 1024), patch_size=16, gaug=False, prr=False)
    wide.init_weights()
    path = tmp_path / 'wide.pth'
    torch.save({'state_dict': wide.state_dict()}, path)
    square = LocAtViT(arch=SMALL, img_size=512, patch_size=16, gaug=False, prr=False,
                      init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    square.init_weights()
    expected = resize_pos_embed(wide.pos_embed.detach(), (16, 64), (32, 32), 'bicubic', 1)
    torch.testing.assert_close(square.pos_embed.detach(), expected, rtol=0, atol=0)
    # The same through load_state_dict (load_from): the grid is in the state dict's metadata.
    direct = LocAtViT(arch=SMALL, img_size=512, patch_size=16, gaug=False, prr=False)
    direct.load_state_dict(wide.state_dict())
    torch.testing.assert_close(direct.pos_embed.detach(), expected, rtol=0, atol=0)


def test_an_untold_grid_is_refused_with_how_to_give_it(tmp_path):
    """14 x 28 tokens without a recorded grid could be 7 x 56, 8 x 49, ...: refused, unless
    init_cfg states the grid."""
    torch.manual_seed(0)
    wide = LocAtViT(arch=SMALL, img_size=(224, 448), patch_size=16, gaug=False, prr=False)
    wide.init_weights()
    path = tmp_path / 'bare.pth'
    torch.save({'state_dict': dict(wide.state_dict())}, path)  # a plain dict: no metadata
    cfg = dict(type='Pretrained', checkpoint=str(path))
    model = LocAtViT(arch=SMALL, img_size=224, patch_size=16, gaug=False, prr=False,
                     init_cfg=cfg)
    with pytest.raises(ValueError, match=r'pos_embed_grid=\(H, W\)'):
        model.init_weights()
    told = LocAtViT(arch=SMALL, img_size=224, patch_size=16, gaug=False, prr=False,
                    init_cfg=dict(cfg, pos_embed_grid=(14, 28)))
    told.init_weights()
    expected = resize_pos_embed(wide.pos_embed.detach(), (14, 28), (14, 14), 'bicubic', 1)
    torch.testing.assert_close(told.pos_embed.detach(), expected, rtol=0, atol=0)
