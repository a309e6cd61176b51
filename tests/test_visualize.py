"""tools/analysis/visualize_locat.py: the PNG layout and what its panels hold."""
import importlib.util
import math
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO
from test_cls_configs import tiny_classifier_cfg
from test_gaug_formula import spec_bias

TOOL = osp.join(REPO, 'tools', 'analysis', 'visualize_locat.py')


@pytest.fixture(scope='module')
def vis():
    spec = importlib.util.spec_from_file_location('visualize_locat', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_model(tmp_path, name: str, seed: int):
    """A tiny classifier's config file and checkpoint (this project's layout)."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = tiny_classifier_cfg(name, num_classes=5)
    config = str(tmp_path / f'{name}.py')
    cfg.dump(config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(tmp_path / f'{name}.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return config, checkpoint


@pytest.fixture
def image(tmp_path):
    path = str(tmp_path / 'image.jpg')
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.slow
def test_png_layout_with_baseline(vis, tmp_path, image):
    config, checkpoint = write_model(tmp_path, 'locat_vit_t_in1k', seed=0)
    base_config, base_checkpoint = write_model(tmp_path, 'vit_t_in1k', seed=1)
    out = str(tmp_path / 'maps.png')
    assert vis.main([checkpoint, image, '--config', config, '--baseline-checkpoint',
                     base_checkpoint, '--baseline-config', base_config, '--queries', '1,1',
                     '2,3', '--out', out, '--img-size', '32']) == 0
    # 2 layers; per query: bias, LocAtViT attention, ViT attention -> 6 columns.
    cell = vis.CELL_INCHES * vis.DPI
    assert Image.open(out).size == (6 * cell, 2 * cell)

    out_one = str(tmp_path / 'one.png')
    vis.main([checkpoint, image, '--config', config, '--layers', '1', '--out', out_one,
              '--img-size', '32'])
    assert Image.open(out_one).size == (2 * cell, 1 * cell)  # centre query, no baseline


def spec_maps(attn, x: torch.Tensor, grid, base_grid, queries):
    """SPEC section 1 in float64 from one attention layer's input ``x`` (1, 1 + H*W, C) and
    its weights (timm's qkv layout): per query patch (y, x), the head-mean bias over the key
    grid and the head-mean attention probability over the key patches, each (H, W)."""
    x = x[0].double().numpy()
    heads, c = attn.num_heads, attn.head_dims
    weight = {n: p.detach().double().numpy() for n, p in attn.named_parameters()}
    qkv = x @ weight['qkv.weight'].T + weight['qkv.bias']  # (L, 3C)
    q, k = (qkv[:, i * heads * c:(i + 1) * heads * c].reshape(-1, heads, c).transpose(1, 0, 2)
            for i in range(2))  # (heads, L, c)
    maps = [([], []) for _ in queries]
    for h in range(heads):
        s = q[h, 1:] @ weight['gaug.log_var.weight'].T + weight['gaug.log_var.bias']
        t = q[h, 1:] @ weight['gaug.log_alpha.weight'].T + weight['gaug.log_alpha.bias']
        bias = np.zeros((q.shape[1], q.shape[1]))  # the class token's row and column: 0
        bias[1:, 1:] = spec_bias(s, t, grid, base_grid)
        logits = q[h] @ k[h].T / math.sqrt(c) + bias
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        for (y, x_), (bias_maps, attn_maps) in zip(queries, maps):
            i = 1 + y * grid[1] + x_
            bias_maps.append(bias[i, 1:].reshape(grid))
            attn_maps.append(probs[i, 1:].reshape(grid))
    return [(np.mean(b, 0), np.mean(a, 0)) for b, a in maps]


def test_maps_of_reference_checkpoint(vis, tmp_path, reference_fixture):
    """The authors' (timm-layout) weights load; each panel is SPEC's bias and attention for
    its query, re-derived here from the layer's input and weights; the bias peaks at the query."""
    cfg = tiny_classifier_cfg('locat_vit_t_in1k', num_classes=10)
    cfg.model.backbone.update(
        arch=dict(embed_dims=128, num_layers=3, num_heads=2, feedforward_channels=512),
        img_size=224, patch_size=16)
    cfg.model.head.in_channels = 128
    config = str(tmp_path / 'ref.py')
    cfg.dump(config)
    checkpoint = str(tmp_path / 'ref.pth')
    torch.save({'model': reference_fixture['state_dict']}, checkpoint)
    model = vis.load_classifier(config, checkpoint)
    inputs = reference_fixture['cases'][1]['input'][:1]  # 96 x 160 -> a 6 x 10 grid
    grid, queries = (6, 10), [(2, 7), (5, 0)]
    maps = vis.collect_maps(model, inputs, queries)
    assert sorted(maps) == [0, 1, 2]

    # Each layer's attention input, with torch's own hook (not the tool's probe).
    layer_inputs = {}
    for index, layer in enumerate(model.backbone.layers):
        layer.attn.register_forward_pre_hook(
            lambda module, args, index=index: layer_inputs.update({index: args[0].detach()}))
    with torch.no_grad():
        model.extract_feat(inputs)
    for index, layer in enumerate(model.backbone.layers):
        want = spec_maps(layer.attn, layer_inputs[index], grid, (14, 14), queries)
        for (y, x), (bias_map, attn_map), (want_bias, want_attn) in zip(
                queries, maps[index], want):
            assert bias_map.shape == attn_map.shape == grid
            assert np.unravel_index(bias_map.argmax(), grid) == (y, x)
            np.testing.assert_allclose(bias_map, want_bias, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(attn_map, want_attn, rtol=1e-4, atol=1e-6)


def test_default_size_is_the_models(vis, tmp_path, image, monkeypatch):
    """Without --img-size the image is drawn at the size the config's backbone is built for:
    the demo classifier (64 px, patch 8) on its 8 x 8 grid, not on 224 px's 28 x 28."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    config = osp.join(REPO, 'configs', 'locat_vit_demo_cls_synthetic.py')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(tmp_path / 'demo_cls.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    captured = {}

    def capture(maps, queries, out, baseline=None):
        captured.update(maps=maps)
        return 1, 1

    monkeypatch.setattr(vis, 'plot_maps', capture)
    args = [checkpoint, image, '--config', config, '--layers', '0', '--out',
            str(tmp_path / 'maps.png')]
    assert vis.main(args + ['--queries', '7,7']) == 0
    bias_map, attn_map = captured['maps'][0][0]
    assert bias_map.shape == attn_map.shape == (8, 8)
    with pytest.raises(ValueError, match=r'outside the \(8, 8\) patch grid'):
        vis.main(args + ['--queries', '8,8'])
