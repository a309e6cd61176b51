"""The classification configs build, and their schedule follows the paper's recipe."""
from typing import Optional

import pytest
import torch
from mmengine.config import Config

from conftest import project_config

VARIANTS = {'t': (192, 0.1), 's': (384, 0.2), 'b': (768, 0.4)}
# The arch names the configs use ('s' alone is mmpretrain's 768-wide ViT, not the paper's S).
ARCH_NAMES = {'t': 't', 's': 'deit-s', 'b': 'b'}
CONFIGS = [f'{m}_{v}_in1k' for m in ('locat_vit', 'vit') for v in 'tsb'] + \
    [f'{m}_{v}_in100' for m in ('locat_vit', 'vit') for v in 'tb']
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def load_config(name: str) -> Config:
    return project_config(f'configs/{name}.py')


def weight_decay_by_name(model, wrapper) -> dict:
    """The weight decay each named parameter of ``model`` gets from ``wrapper``'s optimizer."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(param)]: group['weight_decay']
            for group in wrapper.optimizer.param_groups for param in group['params']}


def tiny_classifier_cfg(name: str, num_classes: int, data_root: Optional[str] = None,
                        size: int = 32, arch: Optional[dict] = None) -> Config:
    """A shipped config shrunk for CPU tests: small model on ``size`` px with patch 8,
    the same pipelines at that size, plain fp32 OptimWrapper (AMP needs a GPU).

    Args:
        name (str): Config name under configs/.
        num_classes (int): Classes of the data.
        data_root (str, optional): A folder in ImageNet layout (``{train,val}/<class>/``);
            the dataloaders read it with ``num_workers=0``.
        size (int): Training/test crop side.
        arch (dict, optional): Backbone arch; default ``TINY_ARCH`` (2 blocks, width 32).
    """
    cfg = load_config(name)
    arch = arch or TINY_ARCH
    cfg.model.backbone.update(arch=arch, img_size=size, patch_size=8)
    cfg.model.head.update(in_channels=arch['embed_dims'], num_classes=num_classes)
    cfg.data_preprocessor.num_classes = num_classes
    cfg.optim_wrapper.type = 'OptimWrapper'
    resize = {'RandomResizedCrop': dict(scale=size), 'ResizeEdge': dict(scale=size + size // 8),
              'CenterCrop': dict(crop_size=size)}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader_cfg = cfg[loader]
        for step in loader_cfg.dataset.pipeline:
            step.update(resize.get(step.type, {}))
        if data_root is not None:
            split = 'train' if loader == 'train_dataloader' else 'val'
            loader_cfg.dataset = dict(type='CustomDataset', data_root=data_root,
                                      data_prefix=split, pipeline=loader_cfg.dataset.pipeline)
            loader_cfg.update(batch_size=8, num_workers=0)
    return cfg


@pytest.mark.parametrize('name', CONFIGS)
def test_config_fields(name):
    cfg = load_config(name)
    variant = name.split('_')[-2]
    width, drop_path = VARIANTS[variant]
    backbone = cfg.model.backbone
    locat = name.startswith('locat')
    assert (backbone.type, backbone.arch, backbone.out_type) == \
        ('LocAtViT', ARCH_NAMES[variant], 'cls_token')
    assert backbone.gaug is locat and backbone.prr is locat
    assert backbone.drop_path_rate == drop_path
    assert cfg.model.head.type == 'VisionTransformerClsHead'
    assert cfg.model.head.in_channels == width
    classes = 100 if name.endswith('in100') else 1000
    assert cfg.model.head.num_classes == classes == cfg.data_preprocessor.num_classes
    assert cfg.data_preprocessor.mean == [127.5] * 3 == cfg.data_preprocessor.std
    assert cfg.custom_imports == dict(imports=['locat_mm'], allow_failed_imports=False)
    assert cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0)
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                       mode='original')
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.persistent_workers is False  # survives num_workers=0 overrides
    assert cfg.train_dataloader.batch_size == 128
    steps = {s.type: s for s in cfg.train_dataloader.dataset.pipeline}
    assert steps['RandAugment'].policies == 'timm_increasing'
    assert (steps['RandAugment'].magnitude_level, steps['RandAugment'].magnitude_std) == (9, .5)
    assert steps['RandomErasing'].erase_prob == 0.25 and steps['RandomErasing'].mode == 'rand'
    assert steps['RandomResizedCrop'].interpolation == 'bicubic'
    # timm drops its ColorJitter(0.4) when RandAugment is on; so must the reproduction.
    assert 'ColorJitter' not in steps
    test_steps = {s.type: s for s in cfg.test_dataloader.dataset.pipeline}
    assert test_steps['ResizeEdge'].scale == 248 and test_steps['CenterCrop'].crop_size == 224
    assert cfg.train_cfg.max_epochs == (600 if classes == 100 else 300)
    assert any(h.type == 'GAugStatsHook' for h in cfg.custom_hooks)


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds(name):
    """Model, data pipelines, optimizer wrapper (paramwise) and schedulers build."""
    import locat_mm  # noqa: F401
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS, TRANSFORMS

    cfg = tiny_classifier_cfg(name, num_classes=7)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    logits = model(torch.randn(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 7)
    for loader in ('train_dataloader', 'test_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            TRANSFORMS.build(step)

    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = weight_decay_by_name(model, wrapper)
    no_decay = {n for n, d in decay.items() if d == 0}
    assert {'backbone.cls_token', 'backbone.pos_embed', 'backbone.layers.0.ln1.weight',
            'backbone.layers.0.attn.qkv.bias', 'head.layers.head.bias'} <= no_decay
    assert decay['backbone.layers.0.attn.qkv.weight'] == 0.05
    assert decay['head.layers.head.weight'] == 0.05
    if name.startswith('locat'):
        assert decay['backbone.layers.0.attn.gaug.log_var.weight'] == 0.05


def lr_trajectory(cfg: Config, epoch_length: int) -> list:
    """The lr of every training iteration under the config's schedulers."""
    from mmengine.optim.scheduler import LinearLR

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    schedulers = []
    for sched in cfg.param_scheduler:
        kwargs = {k: v for k, v in sched.items() if k not in ('type', 'convert_to_iter_based')}
        assert sched.type == 'LinearLR' and sched.convert_to_iter_based
        schedulers.append(
            LinearLR.build_iter_from_epoch(optimizer, epoch_length=epoch_length, **kwargs))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs * epoch_length):
        lrs.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    return lrs


@pytest.mark.parametrize('name,warmup,epochs', [('locat_vit_t_in1k', 20, 300),
                                                ('vit_b_in100', 120, 600)])
def test_schedule_matches_recipe(name, warmup, epochs):
    cfg = load_config(name)
    epoch_length = 3
    lrs = lr_trajectory(cfg, epoch_length)
    assert len(lrs) == epochs * epoch_length
    base, low = 1e-3, 1e-7
    warm_iters, decay_iters = warmup * epoch_length, (epochs - warmup) * epoch_length
    # Linear warm-up from 1e-7 over the warm-up iterations.
    for it in (0, 1, warm_iters // 2, warm_iters - 1):
        expected = low + (base - low) * it / (warm_iters - 1)
        assert lrs[it] == pytest.approx(expected, rel=1e-6)
    # Peak right after the warm-up, then linear decay reaching 1e-7 at the last iteration.
    assert lrs[warm_iters] == pytest.approx(base, rel=1e-9)
    for step in (1, decay_iters // 2, decay_iters - 1):
        expected = base + (low - base) * step / (decay_iters - 1)
        assert lrs[warm_iters + step] == pytest.approx(expected, rel=1e-6)
    assert lrs[-1] == pytest.approx(low, rel=1e-6)
