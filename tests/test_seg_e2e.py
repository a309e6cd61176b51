"""The demo config end to end: training, validation, checkpoint, exact resume, and inference."""
import glob
import json
import os.path as osp
import shutil

import pytest
import torch
from demo_helpers import DEMO_CONFIG, load_tool, make_tiny_data, tiny_run_options
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from locat_mm.checkpoint import load_checkpoint
from locat_mm.datasets import CLS_CLASSES


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('data')))


def _train(work_dir, options, *extra):
    # A fresh experiment name per run: mmengine keeps loggers and visualizers by name, and
    # two runs in one process within a second would otherwise share them.
    load_tool('train').main([
        DEMO_CONFIG, '--work-dir', work_dir, *extra, '--cfg-options', *options,
        f'experiment_name={osp.basename(work_dir)}', f'visualizer.name={work_dir}'
    ])


def _weights(checkpoint):
    return load_checkpoint(checkpoint)['state_dict']


@pytest.mark.slow
def test_train_validate_checkpoint_and_resume_exactly(tiny_root, tmp_path):
    # The heads' dropout on (0.1): the config's RNGStateHook restores the generators' states
    # (a run killed with SIGKILL: test_resume_rng.py).
    options = tiny_run_options(tiny_root, iters=4, checkpoint_interval=2)
    straight = str(tmp_path / 'straight')
    _train(straight, options)
    assert osp.isfile(osp.join(straight, 'iter_2.pth'))
    assert osp.isfile(osp.join(straight, 'iter_4.pth'))
    scalars = glob.glob(osp.join(straight, '*', 'vis_data', 'scalars.json'))
    metrics = [json.loads(line) for line in open(scalars[0])]
    assert any('mIoU' in m for m in metrics), 'no validation mIoU logged'

    # An interrupted run: only the iteration-2 checkpoint, resumed to iteration 4.
    resumed = str(tmp_path / 'resumed')
    shutil.copytree(straight, resumed, ignore=shutil.ignore_patterns('iter_4.pth', 'last_*'))
    _train(resumed, options, '--resume', osp.join(resumed, 'iter_2.pth'))

    final, again = _weights(osp.join(straight, 'iter_4.pth')), _weights(
        osp.join(resumed, 'iter_4.pth'))
    start = _weights(osp.join(straight, 'iter_2.pth'))
    assert final.keys() == again.keys()
    changed = 0
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=1e-6, atol=1e-6, msg=key)
        changed += not torch.equal(final[key], start[key])
    assert changed > len(final) // 2, 'iterations 3-4 did not train'


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_inference_on_odd_size(mode):
    """Inputs that are not a multiple of the patch (8) or the crop give full-size logits."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.model.test_cfg = dict(mode=mode, crop_size=(64, 64), stride=(48, 48))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    image = torch.rand(1, 3, 70, 90) * 255
    meta = dict(img_shape=(70, 90), ori_shape=(70, 90), pad_shape=(70, 90),
                padding_size=[0, 0, 0, 0])
    with torch.no_grad():
        logits = model.inference(image, [meta])
        prediction = model.predict(image, None)
    assert logits.shape == (1, 7, 70, 90)
    assert torch.isfinite(logits).all()
    assert prediction[0].pred_sem_seg.data.shape == (1, 70, 90)


@pytest.mark.slow
def test_demo_pretrains_then_segments_from_the_pretrained_backbone(tmp_path, capsys):
    """tools/demo.py end to end on a tiny budget: both stages, the checkpoint hand-over
    through init_cfg, the per-class table and the overlays."""
    demo = load_tool('demo')
    work_dir = str(tmp_path / 'demo')
    seg_root = make_tiny_data(str(tmp_path / 'seg'))
    demo.DATASET = dict(demo.DATASET, num_train=6, num_val=2)
    demo.CLS_DATASET = dict(demo.CLS_DATASET, num_train=12, num_val=6)
    metrics = demo.main([
        '--data-root', seg_root, '--cls-data-root', str(tmp_path / 'cls'), '--work-dir',
        work_dir, '--pretrain-iters', '2', '--max-iters', '2', '--num-overlays', '2',
        '--threads', '1', '--cfg-options', 'train_dataloader.batch_size=2',
        'experiment_name=demo_e2e', f'visualizer.name={work_dir}'
    ])
    classes = ('background', 'cross', 'digit', 'disc', 'ring', 'square', 'triangle')
    assert {f'IoU.{c}' for c in classes} | {'mIoU', 'aAcc'} <= set(metrics)
    out = capsys.readouterr().out
    assert 'Pretraining finished' in out and 'top-1' in out
    for name in classes:
        assert name in out.split('Demo finished')[1]
    # The pictures: 64 px images upscaled (nearest) to readable panels, class colours below.
    pictures = sorted(glob.glob(osp.join(work_dir, 'predictions', '*.png')))
    assert len(pictures) == 2 and 'image, ground truth, prediction' in out
    height, width = Image.open(pictures[0]).size[::-1]
    assert width >= 3 * 256 and height >= 256

    # The pretrained classifier names its classes: its checkpoint's dataset_meta has them, so
    # mmpretrain's inferencer answers with a shape's name.
    from mmpretrain import ImageClassificationInferencer
    pretrain_ckpt = osp.join(work_dir, 'pretrain', 'iter_2.pth')
    meta = load_checkpoint(pretrain_ckpt)['meta']['dataset_meta']
    assert tuple(meta['classes']) == CLS_CLASSES
    image = glob.glob(osp.join(str(tmp_path / 'cls'), 'val', '*', '*.JPEG'))[0]
    # The demo's Runner left mmseg as the default scope; the inferencer builds in its own.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        inferencer = ImageClassificationInferencer(demo.PRETRAIN_CONFIG,
                                                   pretrained=pretrain_ckpt)
        assert inferencer(image)[0]['pred_class'] in CLS_CLASSES

    # The segmentor started from the pretrained backbone: after 2 warm-up iterations at
    # lr * 1e-3 its backbone is still within a hair of the pretraining's, far from a fresh
    # initialisation (which differs by the scale of the weights themselves).
    pretrained = _weights(osp.join(work_dir, 'pretrain', 'iter_2.pth'))
    segmentor = _weights(osp.join(work_dir, 'iter_2.pth'))
    backbone = [k for k in segmentor if k.startswith('backbone.layers.')]
    assert backbone
    for key in backbone:
        torch.testing.assert_close(segmentor[key], pretrained[key], atol=1e-3, rtol=0,
                                   msg=key)
