"""End to end: pretrain a tiny LocAtViT on synthetic classification data (validate, checkpoint,
resume, GAug statistics in the log), then hand its backbone to segmentation, and do the same
from an authors' (timm-layout) checkpoint."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from conftest import REPO
from resize_oracle import resize_pos_embed_oracle
from test_cls_configs import tiny_classifier_cfg

import locat_mm  # noqa: F401
from locat_mm.checkpoint import load_checkpoint
from locat_mm.datasets import (CLS_CLASSES, SEG_CLASSES, make_synthetic_classification,
                               make_synthetic_segmentation)
from locat_mm.models.ckpt_convert import convert_timm_state_dict

pytestmark = pytest.mark.slow

DEMO_SEG = osp.join(REPO, 'configs', 'locat_vit_demo_upernet_synthetic.py')
# The demo segmentation backbone's arch, read from its config (so the classification weights
# fit it whatever the demo's width).
SEG_ARCH = dict(Config.fromfile(DEMO_SEG).model.backbone.arch)
CLS_SIZE = 32


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    cls_root, seg_root = str(root / 'cls'), str(root / 'seg')
    make_synthetic_classification(cls_root, num_train=24, num_val=12, size=40)
    make_synthetic_segmentation(seg_root, num_train=8, num_val=2)
    return cls_root, seg_root


def cls_runner_cfg(cls_root: str, work_dir: str, max_epochs: int) -> Config:
    cfg = tiny_classifier_cfg('locat_vit_t_in1k', num_classes=len(CLS_CLASSES),
                              data_root=cls_root, size=CLS_SIZE, arch=SEG_ARCH)
    cfg.work_dir = work_dir
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='GAugStatsHook', interval=1)]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.randomness = dict(seed=0)
    return cfg


def run(cfg: Config):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def read_log(work_dir: str) -> str:
    return ''.join(open(p).read() for p in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))))


def seg_cfg(seg_root: str, work_dir: str, init_cfg: dict, arch: dict = SEG_ARCH,
            patch_size: int = 8, img_size: int = 64) -> Config:
    """The demo segmentation config, a few iterations, backbone initialised by ``init_cfg``."""
    cfg = Config.fromfile(DEMO_SEG)
    cfg.work_dir = work_dir
    cfg.model.backbone.update(init_cfg=init_cfg, patch_size=patch_size, img_size=img_size)
    cfg.model.backbone.arch = arch
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = seg_root
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    cfg.custom_hooks = [dict(type='GAugStatsHook', interval=1)]
    return cfg


def built_backbone(cfg: Config):
    """The segmentation model of ``cfg`` after init_weights (what Runner.train starts from)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.backbone


def test_pretrain_resume_then_segmentation(data, tmp_path):
    cls_root, seg_root = data
    work = str(tmp_path / 'cls')
    runner = run(cls_runner_cfg(cls_root, work, max_epochs=2))
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    log = read_log(work)
    assert 'accuracy/top1' in log
    for key in ('gaug/l0_var_row', 'gaug/l3_var_col', 'gaug/l3_amp'):
        assert key in log
    scalars = [json.loads(line) for p in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
               for line in open(p)]
    assert any('gaug/l0_amp' in s for s in scalars)

    # Resume: continues from epoch 2 to 3.
    cfg = cls_runner_cfg(cls_root, work, max_epochs=3)
    cfg.resume = True
    runner = run(cfg)
    assert runner.epoch == 3 and osp.isfile(osp.join(work, 'epoch_3.pth'))
    assert 'resumed epoch: 2' in read_log(work)

    # Hand-off: the classification checkpoint initialises the segmentation backbone.
    checkpoint = osp.join(work, 'epoch_3.pth')
    cls_state = load_checkpoint(checkpoint)['state_dict']
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    seg_work = str(tmp_path / 'seg')
    cfg = seg_cfg(seg_root, seg_work, init_cfg)
    backbone = built_backbone(cfg)
    grid = (CLS_SIZE // 8, ) * 2
    for key, value in backbone.state_dict().items():
        source = cls_state['backbone.' + key]
        if key == 'pos_embed':  # pretrained on a 4 x 4 grid, the seg model's is 8 x 8
            source = torch.from_numpy(
                resize_pos_embed_oracle(source, grid, backbone.patch_resolution)).float()
        torch.testing.assert_close(value, source, msg=key)
    run(cfg)
    seg_log = read_log(seg_work)
    assert f'LocAtViT: loaded {checkpoint}' in seg_log
    assert 'Iter(train) [3/3]' in seg_log and 'gaug/l0_var_row' in seg_log
    assert 'mIoU' in seg_log


def test_segmentation_from_authors_checkpoint(data, tmp_path, reference_fixture):
    _, seg_root = data
    checkpoint = str(tmp_path / 'authors.pth')
    torch.save({'model': reference_fixture['state_dict']}, checkpoint)
    arch = dict(embed_dims=128, num_layers=3, num_heads=2, feedforward_channels=512)
    cfg = seg_cfg(seg_root, str(tmp_path / 'seg'), dict(type='Pretrained', checkpoint=checkpoint),
                  arch=arch, patch_size=16, img_size=224)
    # Three blocks: one feature level each, strides 4/8/16 after the neck.
    cfg.model.backbone.out_indices = (0, 1, 2)
    cfg.model.neck.update(in_channels=[128] * 3, out_channels=128, scales=[4, 2, 1])
    cfg.model.decode_head.update(in_channels=[128] * 3, in_index=[0, 1, 2],
                                 num_classes=len(SEG_CLASSES))
    cfg.model.auxiliary_head.update(in_channels=128, in_index=2)
    expected = convert_timm_state_dict(reference_fixture['state_dict'])
    # The authors' model runs GAug on the grid it was built for (img_size / patch_size): the
    # grid the loaded backbone's buffer must record.
    ref = reference_fixture['config']
    expected['gaug_base_grid'] = torch.tensor([ref['img_size'] // ref['patch_size']] * 2)
    for key, value in built_backbone(cfg).state_dict().items():
        torch.testing.assert_close(value, expected[key], msg=key)
    run(cfg)
    assert 'Iter(train) [3/3]' in read_log(str(tmp_path / 'seg'))
