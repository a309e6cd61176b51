"""Every segmentation config: recipe values, model, optimizer, data pipelines on a tiny copy."""
import glob
import os
import os.path as osp
import re

import mmcv
import numpy as np
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from conftest import project_config

import locat_mm  # noqa: F401  (registers LocAtViT, LinearSegHead and the constructor)
from locat_mm import LocAtViT
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARCHS = {'t': 192, 's': 384, 'b': 768}
# The arch names the configs use ('s' alone is mmpretrain's 768-wide ViT, not the paper's S).
ARCH_NAMES = {'t': 't', 's': 'deit-s', 'b': 'b'}
DATASETS_BY_NAME = {'ade20k': 150, 'pc59': 59, 'cocostuff164k': 171}
# The paper's grid; other segmentation configs (the synthetic demo) have their own tests.
GRID_NAME = re.compile(r'(locat_vit|vit)_([tsb])_(linear|upernet)_(ade20k|pc59|cocostuff164k)\.py')
SEG_CONFIGS = sorted(
    osp.relpath(p, REPO) for pattern in ('*_linear_*.py', '*_upernet_*.py')
    for p in glob.glob(osp.join(REPO, 'configs', pattern)) if GRID_NAME.fullmatch(osp.basename(p)))


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def parse_name(path: str):
    """``configs/{locat_vit,vit}_{arch}_{protocol}_{dataset}.py`` -> its four parts."""
    return GRID_NAME.fullmatch(osp.basename(path)).groups()


def test_every_row_has_both_models():
    rows = {(f, a, p, d) for f, a, p, d in map(parse_name, SEG_CONFIGS)}
    expected = {(f, a, p, d) for f in ('locat_vit', 'vit') for a in ARCHS
                for p in ('linear', 'upernet') for d in DATASETS_BY_NAME}
    assert rows == expected and len(SEG_CONFIGS) == 36


@pytest.mark.parametrize('path', SEG_CONFIGS)
def test_recipe(path):
    family, arch, protocol, dataset = parse_name(path)
    cfg = project_config(path)
    assert cfg.custom_imports == dict(imports=['locat_mm'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == 'LocAtViT' and backbone.arch == ARCH_NAMES[arch]
    # the pretrained grid, dense features before the final norm
    assert (backbone.img_size, backbone.out_type, backbone.final_norm) == (224, 'featmap', False)
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.checkpoint == f'checkpoints/{family}_{arch}_in1k.pth'
    locality = family == 'locat_vit'
    assert backbone.get('gaug', True) is locality and backbone.get('prr', True) is locality
    assert cfg.model.decode_head.num_classes == DATASETS_BY_NAME[dataset]
    crop = cfg.crop_size
    assert cfg.model.data_preprocessor.size == crop
    assert crop == ((480, 480) if dataset == 'pc59' else (512, 512))
    assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.model.test_cfg.mode == 'whole'
    ends = [(s.begin, s.end) for s in cfg.param_scheduler]
    assert all(not s.by_epoch for s in cfg.param_scheduler)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.betas, optimizer.weight_decay) == \
        ('AdamW', (0.9, 0.999), 0.01)
    if protocol == 'linear':
        assert backbone.frozen_stages == 12 and backbone.out_indices == (11, )
        assert cfg.model.decode_head.type == 'LinearSegHead'
        assert cfg.model.decode_head.channels == 512
        assert 'auxiliary_head' not in cfg.model
        assert cfg.train_cfg.max_iters == 20000 and cfg.train_dataloader.batch_size == 32
        assert optimizer.lr == 1e-3
        assert ends == [(0, 5000), (5000, 20000)]
        assert [(s.type, s.start_factor, s.end_factor) for s in cfg.param_scheduler] == \
            [('LinearLR', 1e-4, 1.0), ('LinearLR', 1.0, 1e-8)]
    else:
        assert backbone.get('frozen_stages', -1) == -1 and backbone.out_indices == (2, 5, 8, 11)
        assert backbone.drop_path_rate == 0.1
        assert cfg.model.neck.scales == [4, 2, 1, 0.5]
        assert cfg.model.auxiliary_head.num_classes == DATASETS_BY_NAME[dataset]
        assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
        assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
        assert optimizer.lr == 6e-5
        assert cfg.optim_wrapper.constructor == 'LocAtLayerDecayOptimWrapperConstructor'
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65
        assert ends == [(0, 1500), (1500, 160000)]


@pytest.mark.parametrize('path', SEG_CONFIGS)
def test_model_builds_and_widths_fit(path):
    """The configured model, built on the meta device (no memory, no init), runs end to end:
    every head's in_channels fits the arch and the classifier has the dataset's classes."""
    _, arch, protocol, dataset = parse_name(path)
    cfg = project_config(path)
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model).eval()
        logits = model._forward(torch.zeros(1, 3, 64, 64))
    assert model.backbone.embed_dims == ARCHS[arch]
    stride = 16 if protocol == 'linear' else 4
    assert logits.shape == (1, DATASETS_BY_NAME[dataset], 64 // stride, 64 // stride)


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_pretrained_backbone_loads(arch, tmp_path):
    """One config per arch loads its backbone through init_cfg (Pretrained): the LocAtViT
    protocol from a LocAtViT checkpoint, the plain-ViT baseline from a plain one."""
    family = 'vit' if arch == 's' else 'locat_vit'  # both checkpoint kinds exercised
    cfg = project_config(f'configs/{family}_{arch}_linear_pc59.py')
    source = LocAtViT(arch=ARCH_NAMES[arch], gaug=family == 'locat_vit')
    ckpt = str(tmp_path / 'backbone.pth')
    torch.save({'state_dict': source.state_dict()}, ckpt)
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith('ln1.'):  # the final norm is not part of the dense model
            torch.testing.assert_close(loaded[key], value, msg=key)


# ---------------------------------------------------------------- training step, optimizer
def tiny_segmentor(path: str) -> torch.nn.Module:
    """The config's model with its LocAtViT-T backbone cut to 12 narrow blocks."""
    cfg = project_config(path)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.arch = dict(
        embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=32)
    return MODELS.build(cfg.model)


def fake_batch(num_classes: int, size: int = 64):
    inputs = torch.randn(2, 3, size, size)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size)))
        samples.append(sample)
    return inputs, samples


def test_upernet_forward_loss_backward():
    model = tiny_segmentor('configs/locat_vit_t_upernet_ade20k.py')
    model.init_weights()
    model.train()
    losses = model.loss(*fake_batch(150))
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad is not None  # fine-tuned end to end


def test_linear_forward_loss_trains_only_the_probe():
    model = tiny_segmentor('configs/locat_vit_t_linear_pc59.py')
    model.init_weights()
    model.train()
    assert not model.backbone.layers[0].training  # frozen blocks stay in eval mode
    losses = model.loss(*fake_batch(59))
    losses['decode.loss_ce'].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.decode_head.proj.conv.weight.grad is not None


def test_upernet_optimizer_has_layer_decay():
    cfg = project_config('configs/locat_vit_t_upernet_ade20k.py')
    wrapper = build_optim_wrapper(tiny_segmentor('configs/locat_vit_t_upernet_ade20k.py'),
                                  cfg.optim_wrapper)
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    lr = 6e-5
    assert groups['decode_head.conv_seg.weight']['lr'] == pytest.approx(lr)
    assert groups['backbone.layers.11.attn.qkv.weight']['lr'] == pytest.approx(lr * 0.65)
    assert groups['backbone.layers.0.attn.qkv.weight']['lr'] == pytest.approx(lr * 0.65**12)
    assert groups['backbone.pos_embed']['lr'] == pytest.approx(lr * 0.65**13)
    for name in ('backbone.pos_embed', 'backbone.cls_token', 'backbone.layers.3.ln1.weight',
                 'backbone.layers.3.ln2.bias', 'decode_head.conv_seg.bias'):
        assert groups[name]['weight_decay'] == 0., name
    assert groups['backbone.layers.3.ffn.layers.1.weight']['weight_decay'] == 0.01


# ---------------------------------------------------------------- data pipelines
def _write_pair(img_path: str, seg_path: str, max_label: int, rng) -> None:
    mmcv.imwrite(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), img_path)
    mmcv.imwrite(rng.integers(0, max_label + 1, (32, 40), dtype=np.uint8), seg_path)


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    """Two image/label pairs per split in each dataset's on-disk layout; label files hold the
    raw ids (ADE20K and PASCAL-Context: 0 = other, reduced away; COCO-Stuff: train ids)."""
    rng = np.random.default_rng(0)
    roots = {}
    root = tmp_path_factory.mktemp('ade')
    for split, prefix in (('training', 'train'), ('validation', 'val')):
        for i in range(2):
            name = f'ADE_{prefix}_{i:08d}'
            _write_pair(f'{root}/images/{split}/{name}.jpg',
                        f'{root}/annotations/{split}/{name}.png', 150, rng)
    roots['ADE20KDataset'] = str(root)
    root = tmp_path_factory.mktemp('voc2010')
    for split in ('train', 'val'):
        names = [f'2008_{split}{i}' for i in range(2)]
        for name in names:
            _write_pair(f'{root}/JPEGImages/{name}.jpg',
                        f'{root}/SegmentationClassContext/{name}.png', 59, rng)
        os.makedirs(f'{root}/ImageSets/SegmentationContext', exist_ok=True)
        with open(f'{root}/ImageSets/SegmentationContext/{split}.txt', 'w') as f:
            f.write('\n'.join(names) + '\n')
    roots['PascalContextDataset59'] = str(root)
    root = tmp_path_factory.mktemp('coco_stuff164k')
    for split in ('train2017', 'val2017'):
        for i in range(2):
            _write_pair(f'{root}/images/{split}/{i:012d}.jpg',
                        f'{root}/annotations/{split}/{i:012d}_labelTrainIds.png', 170, rng)
    roots['COCOStuffDataset'] = str(root)
    return roots


# Configs of one dataset share mmseg's dataset and pipelines: each distinct dataset config is
# built and checked once (each build runs a full garbage collection in mmengine; resizing to 512
# and photometric distortion dominate the pipeline).
_CHECKED_DATASET_CFGS = set()


def build_dataset_once(split: str, dataset_cfg, num_classes: int):
    """The dataset ``dataset_cfg`` builds (two samples, ``num_classes`` classes), or None when
    an equal config was checked before in this session."""
    key = (split, num_classes, repr(dataset_cfg))
    if key in _CHECKED_DATASET_CFGS:
        return None
    _CHECKED_DATASET_CFGS.add(key)
    data = DATASETS.build(dataset_cfg)
    assert len(data) == 2 and len(data.metainfo['classes']) == num_classes
    return data


@pytest.mark.parametrize('path', SEG_CONFIGS)
def test_data_pipelines(path, data_roots):
    _, _, _, dataset = parse_name(path)
    cfg = project_config(path)
    num_classes = DATASETS_BY_NAME[dataset]
    for split in ('train', 'val', 'test'):
        dataset_cfg = cfg[f'{split}_dataloader'].dataset
        dataset_cfg.data_root = data_roots[dataset_cfg.type]
        data = build_dataset_once(split, dataset_cfg, num_classes)
        if data is None:
            continue
        sample = data[0]
        image, labels = sample['inputs'], sample['data_samples'].gt_sem_seg.data
        values = set(labels.unique().tolist()) - {255}
        assert values and max(values) < num_classes  # reduce_zero_label fits num_classes
        if split == 'train':  # cropped (the data preprocessor pads to the crop size)
            assert image.shape[-2:] == labels.shape[-2:]
            assert all(s <= c for s, c in zip(image.shape[-2:], cfg.crop_size))
        else:  # resized for the model, labels kept at the original size
            assert labels.shape[-2:] == (32, 40) and min(image.shape[-2:]) > 32
