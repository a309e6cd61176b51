"""Every installed mmseg and mmpretrain config whose backbone is ``VisionTransformer`` works
with only ``backbone.type`` changed to ``LocAtViT``.

For each config (huge and giant sizes left out for time): build the toolbox's model twice, as
shipped and with the type swapped (GAug and PRR on, LocAtViT's defaults), without loading any
checkpoint; the swapped backbone has exactly upstream's parameters plus GAug's, and
``extract_feat`` on a small image gives outputs of the same structure and shapes.

Time: configs that differ only in data, schedule or head (63 build 40 distinct backbone and
neck pairs) are built once, under the first config's name; the others are skipped naming it.
The checks are of structure and shape, never of values, so ``nn.Linear`` layers skip their
default random init and keep the memory they were given (the init was two thirds of a ViT-L
build, and weights never written stay out of the resident set: the file peaks at 1.2 GB).

Memory: models up to ViT-L are built (1.2 GB of weights each); one is alive at a time and each
test's are collected before the next (conftest), so the file peaks near the largest
pair's build, not the sum of 60 (README, "Tests").
"""
import copy
import gc
import glob
import importlib
import json
import os.path as osp
import re
from typing import Dict, List, Tuple

import pytest
import torch

import locat_mm  # noqa: F401  (registers LocAtViT in both toolboxes)
from conftest import release_freed_memory

TOOLBOXES = ('mmseg', 'mmpretrain')
LEFT_OUT_ARCHS = {'h', 'huge', 'eva-g', 'eva-giant', 'dinov2-g', 'dinov2-giant'}
SMALL_INPUT = (1, 3, 32, 48)
# A ``backbone=dict(type='VisionTransformer'`` (not e.g. CLIP's ``vision_backbone``).
BACKBONE_VIT = re.compile(r"(?<![\w])backbone\s*=\s*dict\(\s*type\s*=\s*'VisionTransformer'")


def config_root(toolbox: str) -> str:
    return osp.join(osp.dirname(importlib.import_module(toolbox).__file__), '.mim', 'configs')


def candidate_configs() -> List[Tuple[str, str]]:
    """Configs that mention ``VisionTransformer`` themselves or through a base file.

    A text search (cheap at collection); the test itself reads the merged config and skips
    the few whose *backbone* is not a VisionTransformer (e.g. CLIP's vision towers).
    """
    found = []
    for toolbox in TOOLBOXES:
        root = config_root(toolbox)
        texts = {f: open(f).read() for f in glob.glob(f'{root}/**/*.py', recursive=True)}
        marked = {f for f, text in texts.items() if BACKBONE_VIT.search(text)}
        while True:  # a file inheriting from a marked file is marked too
            names = '|'.join(re.escape(osp.basename(f)) for f in marked)
            grown = marked | {f for f, text in texts.items() if re.search(names, text)}
            if grown == marked:
                break
            marked = grown
        found += [(toolbox, osp.relpath(f, root)) for f in sorted(marked)
                  if '_base_' not in f.split(osp.sep)]
    return found


@pytest.fixture(autouse=True)
def uninitialised_linears(monkeypatch):
    """``nn.Linear`` weights left as allocated: no value here is checked, only structure."""
    monkeypatch.setattr(torch.nn.Linear, 'reset_parameters', lambda self: None)


# (toolbox, model type, backbone, neck) -> the first config that built it.
FIRST_BUILT: Dict[str, str] = {}


def build_signature(toolbox: str, model) -> str:
    """What the type swap depends on: the model class and its backbone and neck arguments
    (the weights to load are not loaded here)."""
    backbone = {k: v for k, v in model.backbone.to_dict().items()
                if k not in ('init_cfg', 'pretrained')}
    neck = model.get('neck')
    neck = neck.to_dict() if hasattr(neck, 'to_dict') else neck
    return json.dumps([toolbox, model.type, backbone, neck], sort_keys=True, default=repr)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def shapes(outs) -> list:
    return [shapes(o) if isinstance(o, (list, tuple)) else tuple(o.shape) for o in outs]


@pytest.mark.slow
@pytest.mark.parametrize('toolbox,config', candidate_configs())
def test_type_swap_builds_and_runs(toolbox, config):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(config_root(toolbox), config))
    backbone = cfg.model.get('backbone')
    if not isinstance(backbone, dict) or backbone.get('type') != 'VisionTransformer':
        pytest.skip('backbone is not a VisionTransformer')
    if str(backbone.get('arch', '')).lower() in LEFT_OUT_ARCHS:
        pytest.skip('huge and giant sizes are left out for time')
    first = FIRST_BUILT.setdefault(build_signature(toolbox, cfg.model), config)
    if first != config:
        pytest.skip(f'same model type, backbone and neck as {first}')
    init_default_scope(toolbox)  # as the toolbox's Runner does
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    x = torch.randn(*SMALL_INPUT)

    torch.manual_seed(0)
    upstream = registry.build(copy.deepcopy(cfg.model)).eval()  # builds edit their cfg
    with torch.no_grad():
        want = shapes(upstream.extract_feat(x))
    upstream_params = count(upstream.backbone)
    del upstream
    gc.collect()
    release_freed_memory()  # before the second model of up to ViT-L size is built

    cfg.model.backbone.type = 'LocAtViT'
    model = registry.build(copy.deepcopy(cfg.model)).eval()
    assert type(model.backbone).__name__ == 'LocAtViT' and model.backbone.toolbox == toolbox
    layers = model.backbone.layers
    head_dims = [layer.attn.head_dims for layer in layers]
    # Nothing but GAug added: two maps per layer, (2c + 2) + (c + 1) parameters. mmseg's ViT
    # keeps an unused class token and its position-embedding row with with_cls_token=False;
    # LocAtViT (as mmpretrain's) has neither, and drops them when loading such a checkpoint.
    unused = 2 * model.backbone.embed_dims if toolbox == 'mmseg' and \
        not model.backbone.with_cls_token else 0
    added = count(model.backbone) - upstream_params
    assert added == sum(3 * c + 3 for c in head_dims) - unused
    assert all(layer.attn.gaug is not None for layer in layers)
    with torch.no_grad():
        outs = model.extract_feat(x)
    assert shapes(outs) == want
