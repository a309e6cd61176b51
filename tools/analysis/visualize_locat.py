"""Plot LocAtViT's Gaussian bias and attention maps for chosen query patches of one image.

    python tools/analysis/visualize_locat.py CHECKPOINT IMAGE --config CFG \
        [--baseline-checkpoint CKPT --baseline-config CFG] [--queries y,x ...] \
        [--layers 0 5 11] [--out out.png] [--img-size N] [--trust-checkpoint]

One row per layer; for each query patch (patch-grid coordinates ``y,x``, default the centre)
the columns are that layer's GAug bias map (mean over heads), LocAtViT's attention map from
the query to the patch keys (mean over heads, bias included), and, with a baseline, the plain
ViT's attention map. The query patch is marked with a red dot. Checkpoints may be in this
project's layout or the authors' timm layout; they are read with ``weights_only=True``
(``--trust-checkpoint`` reads files that need more, from sources you trust only).
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

import locat_mm  # noqa: E402,F401  (registers LocAtViT, applies the stack fixes)
from locat_mm.engine.hooks import AttentionProbe, attention_layers  # noqa: E402
from locat_mm.checkpoint import load_checkpoint, trust_checkpoints  # noqa: E402
from locat_mm.models.ckpt_convert import (convert_timm_classifier,  # noqa: E402
                                              is_timm_layout, unwrap_state_dict)
from locat_mm.layers import LocAtAttention  # noqa: E402

# Per layer, per query: (bias map (H, W) or None without GAug, attention map (H, W)).
LayerMaps = Dict[int, List[Tuple[Optional[np.ndarray], np.ndarray]]]

CELL_INCHES = 2.0
DPI = 100


def load_classifier(config: str, checkpoint: str, device: str = 'cpu') -> torch.nn.Module:
    """Builds the config's classifier and loads a checkpoint (project or timm layout) strictly.

    Args:
        config (str): An mmpretrain classification config (e.g. configs/locat_vit_b_in1k.py).
        checkpoint (str): Weights of that model.
        device (str): Where to run.

    Returns:
        nn.Module: The classifier in eval mode.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model
    model_cfg.backbone.pop('init_cfg', None)  # the weights come from `checkpoint`
    if 'data_preprocessor' in cfg:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    state_dict = unwrap_state_dict(load_checkpoint(checkpoint))
    if is_timm_layout(state_dict):
        state_dict = convert_timm_classifier(state_dict)
    model.load_state_dict(state_dict, strict=True)
    return model.to(device).eval()


def load_image(path: str, img_size: Tuple[int, int], model: torch.nn.Module) -> Tensor:
    """An image file as the model's normalised input, (1, 3, H, W) for ``img_size`` (H, W)."""
    import mmcv
    image = mmcv.imresize(mmcv.imread(path), img_size[::-1], interpolation='bicubic')
    inputs = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return model.data_preprocessor({'inputs': [inputs]}, training=False)['inputs']


def query_maps(layer: LocAtAttention, q: Tensor, k: Tensor, grid: Tuple[int, int],
               num_prefix: int,
               queries: Sequence[Tuple[int, int]]) -> List[Tuple[Optional[np.ndarray],
                                                                np.ndarray]]:
    """Bias and attention maps of the first image's query patches in one layer.

    Args:
        layer (LocAtAttention): The layer (its GAug module, if any, gives the bias).
        q, k (Tensor): (B, heads, P + N, c) queries and keys of that layer.
        grid (tuple[int, int]): Patch grid (H, W).
        num_prefix (int): P.
        queries (Sequence[tuple[int, int]]): Patch coordinates (y, x).

    Returns:
        list: per query, the bias map (H, W) (None without GAug) and the attention map (H, W)
        over patch keys, both averaged over heads.
    """
    H, W = grid
    # (heads, N, N) for the first image; a few MB even at large grids.
    dense = layer.gaug.dense_bias(q[:1], grid, num_prefix)[0] if layer.gaug is not None else None
    maps = []
    for y, x in queries:
        i = y * W + x
        logits = torch.einsum('hc,hlc->hl', q[0, :, num_prefix + i].float(),
                              k[0].float()) * layer.head_dims**-0.5  # (heads, P + N)
        bias = None
        if dense is not None:
            logits[:, num_prefix:] += dense[:, i]
            bias = dense[:, i].mean(0).reshape(H, W).cpu().numpy()
        attn = logits.softmax(-1)[:, num_prefix:].reshape(-1, H, W).mean(0)
        maps.append((bias, attn.cpu().numpy()))
    return maps


def collect_maps(model: torch.nn.Module, inputs: Tensor, queries: Sequence[Tuple[int, int]],
                 layers: Optional[Sequence[int]] = None) -> LayerMaps:
    """Runs the model once and returns the maps of the chosen layers (default: all)."""
    modules = attention_layers(model)
    layers = range(len(modules)) if layers is None else layers
    missing = [i for i in layers if not 0 <= i < len(modules)]
    if missing:
        raise ValueError(f'layers {missing} do not exist: the model has {len(modules)}')
    found: LayerMaps = {}

    def record(index, layer, q, k, grid, num_prefix):
        if index in layers:
            outside = [(y, x) for y, x in queries if not (0 <= y < grid[0] and 0 <= x < grid[1])]
            if outside:
                raise ValueError(f'queries {outside} lie outside the {grid} patch grid')
            found[index] = query_maps(layer, q, k, grid, num_prefix, queries)

    with AttentionProbe(modules, record), torch.no_grad():
        model.extract_feat(inputs)
    return found


def plot_maps(maps: LayerMaps, queries: Sequence[Tuple[int, int]], out: str,
              baseline: Optional[LayerMaps] = None) -> Tuple[int, int]:
    """Writes the PNG grid; returns its (rows, columns) of panels.

    The figure is ``columns * CELL_INCHES * DPI`` pixels wide and ``rows * CELL_INCHES * DPI``
    high.
    """
    layers = sorted(maps)
    titles = ['GAug bias', 'LocAtViT attn'] + (['ViT attn'] if baseline is not None else [])
    cols = len(queries) * len(titles)
    fig, axes = plt.subplots(
        len(layers), cols, figsize=(cols * CELL_INCHES, len(layers) * CELL_INCHES), dpi=DPI,
        squeeze=False)
    for r, layer in enumerate(layers):
        for qi, (y, x) in enumerate(queries):
            bias, attn = maps[layer][qi]
            panels = [bias, attn] + ([baseline[layer][qi][1]] if baseline is not None else [])
            for ti, panel in enumerate(panels):
                ax = axes[r, qi * len(titles) + ti]
                ax.set_xticks([])
                ax.set_yticks([])
                if panel is None:  # a layer without GAug
                    ax.text(0.5, 0.5, 'no GAug', ha='center', va='center')
                else:
                    ax.imshow(panel, cmap='viridis')
                    ax.plot([x], [y], 'r.', markersize=6)
                if r == 0:
                    ax.set_title(f'q=({y},{x}) {titles[ti]}', fontsize=7)
                if qi == 0 and ti == 0:
                    ax.set_ylabel(f'layer {layer}', fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.1)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return len(layers), cols


def parse_query(text: str) -> Tuple[int, int]:
    try:
        y, x = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a query is "y,x" in patch units, got {text!r}')
    return y, x


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument('--config', required=True, help='classification config of CHECKPOINT')
    parser.add_argument('--baseline-checkpoint', help='plain-ViT weights to compare with')
    parser.add_argument('--baseline-config', help='config of the baseline')
    parser.add_argument('--queries', nargs='+', type=parse_query,
                        help='query patches "y,x" (default: the centre patch)')
    parser.add_argument('--layers', nargs='+', type=int, help='layers to plot (default: all)')
    parser.add_argument('--out', default='locat_maps.png')
    parser.add_argument('--img-size', type=int,
                        help='side the image is resized to (default: the img_size the '
                        "config's backbone is built for)")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read checkpoints whose pickle may run code (trusted sources only)')
    args = parser.parse_args(argv)
    if args.trust_checkpoint:
        trust_checkpoints()
    if bool(args.baseline_checkpoint) != bool(args.baseline_config):
        parser.error('--baseline-checkpoint and --baseline-config go together')

    model = load_classifier(args.config, args.checkpoint, args.device)
    # The size the model was built (and trained) for, unless asked otherwise.
    size = (args.img_size, ) * 2 if args.img_size else tuple(model.backbone.img_size)
    patch = model.backbone.patch_size
    grid = tuple(-(-side // patch) for side in size)
    queries = args.queries or [(grid[0] // 2, grid[1] // 2)]
    inputs = load_image(args.image, size, model).to(args.device)
    maps = collect_maps(model, inputs, queries, args.layers)
    baseline = None
    if args.baseline_checkpoint:
        base_model = load_classifier(args.baseline_config, args.baseline_checkpoint, args.device)
        baseline = collect_maps(base_model, load_image(args.image, size, base_model),
                                queries, sorted(maps))
    rows, cols = plot_maps(maps, queries, args.out, baseline)
    print(f'saved {osp.abspath(args.out)}: {rows} layers x {cols} panels')
    return 0


if __name__ == '__main__':
    sys.exit(main())
