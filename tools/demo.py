"""The quick start: pretrain a small LocAtViT, then train it with UperNet, on CPU, in minutes.

    python tools/demo.py [--data-root data/synthetic_seg] [--cls-data-root data/synthetic_cls]
                         [--work-dir work_dirs/demo] [--pretrain-iters N] [--max-iters N]
                         [--threads N] [--cfg-options k=v ...]

1. writes the synthetic classification and segmentation datasets (``locat_mm.datasets``)
   unless complete ones with the same parameters are already there;
2. pretrains the backbone on the image-level task with MMPretrain
   (``configs/locat_vit_demo_cls_synthetic.py``), the paper's first stage;
3. trains ``configs/locat_vit_demo_upernet_synthetic.py`` with MMSegmentation, the backbone
   loaded from stage 2 through its ``init_cfg``;
4. validates (mIoU, and IoU per class) and paints a few predictions next to their ground truth,
   upscaled so that a person can read them, with a legend of the class colours
   (``locat_mm.seg.overlay``);
5. prints the per-class table and where the checkpoint, the log and the pictures are.

Both stages run with mmengine's Runner in this process, on ``--threads`` threads (default:
every core; ``make`` exports ``OMP_NUM_THREADS=1`` for the tests, which would otherwise leave
one of two cores idle).
"""
import argparse
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import DictAction

from locat_mm import launch
from locat_mm.datasets import (make_synthetic_classification, make_synthetic_segmentation,
                               synthetic_dataset_ready)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'locat_vit_demo_upernet_synthetic.py')
PRETRAIN_CONFIG = osp.join(REPO, 'configs', 'locat_vit_demo_cls_synthetic.py')
#: The datasets of the two stages: light objects on a darker background (``fill='flat'``),
#: the class in the outline only. The segmentation set is the one the demo config expects:
#: 64 px images, the pretraining's size, so the backbone sees the 8 x 8 patch grid it was
#: pretrained on; at most 2 objects of radius 20-35 % of the side (13-22 px, 3-6 patches
#: across, the scale of the pretraining's labelled objects), so that an outline, a digit's
#: glyph included, spans several patches of 8 px. The mini paper's set (tools/mini_paper.py)
#: keeps the generator's default, smaller objects (radius 12-30 %).
DATASET = dict(num_train=2000, num_val=100, size=64, max_objects=2,
               radius_range=(0.2, 0.35), fill='flat', seed=0)
CLS_DATASET = dict(num_train=4000, num_val=300, size=64, distractors=2, fill='flat', seed=0)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'synthetic_seg'))
    parser.add_argument('--cls-data-root', default=osp.join(REPO, 'data', 'synthetic_cls'))
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    parser.add_argument('--pretrain-iters', type=int, help='pretraining iterations (default: '
                        "the pretraining config's; 0 skips pretraining)")
    parser.add_argument('--max-iters', type=int, help='segmentation training iterations '
                        "(default: the config's)")
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='torch threads (default: every core)')
    parser.add_argument('--num-overlays', type=int, default=4,
                        help='validation images to paint (work_dir/predictions/*.png)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def prepare_data(root: str, kind: str = 'seg') -> None:
    """Writes a dataset unless a complete one with the demo's parameters is at ``root``."""
    params, make = ((DATASET, make_synthetic_segmentation) if kind == 'seg' else
                    (CLS_DATASET, make_synthetic_classification))
    if synthetic_dataset_ready(root, kind=kind, **params):
        print(f'Dataset: {root} (present)')
        return
    start = time.time()
    make(root, **params)
    print(f'Dataset: wrote {root} in {time.time() - start:.1f}s')


def _iteration_options(iters: int, warmup: int) -> dict:
    """Overrides that set a run's length; the warm-up (scheduler 0) keeps ``warmup`` iterations
    when they fit."""
    return launch.run_length_options(iters, min(warmup, max(iters // 10, 1)))


def pretrain(args: argparse.Namespace) -> Optional[str]:
    """Stage 1: MMPretrain image-level pretraining; returns its checkpoint (None if skipped)."""
    if args.pretrain_iters == 0:
        return None
    prepare_data(args.cls_data_root, kind='cls')
    options = {f'{loader}.dataset.data_root': args.cls_data_root
               for loader in launch.DATALOADERS}
    if args.pretrain_iters:
        options.update(_iteration_options(args.pretrain_iters, 60))
    cfg = launch.load_config(PRETRAIN_CONFIG, options, osp.join(args.work_dir, 'pretrain'),
                             'none')
    launch.configure_dataloaders(cfg, launch.DATALOADERS, mmpretrain_defaults=True)
    start = time.time()
    runner = launch.build_runner(cfg)
    runner.train()
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    print(f'\nPretraining finished: {cfg.train_cfg.max_iters} iterations in '
          f'{(time.time() - start) / 60:.1f} min, top-1 {top1:.2f} on the image-level task\n')
    return osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


def class_table(metrics: Dict[str, float], classes: Sequence[str]) -> str:
    """The per-class IoU table of ``ClassIoUMetric``'s results."""
    width = max(len(name) for name in classes)
    lines = [f'  {"class":<{width}}  IoU']
    lines += [f'  {name:<{width}}  {metrics[f"IoU.{name}"]:6.2f}' for name in classes]
    return '\n'.join(lines)


def write_predictions(runner, out_dir: str, num: int) -> List[str]:
    """Paints ``num`` evenly spaced validation images with the trained model
    (:func:`locat_mm.seg.overlay.prediction_picture`); returns the PNG paths."""
    import cv2
    import mmcv
    from mmengine.dataset import pseudo_collate

    from locat_mm.seg.overlay import prediction_picture
    dataset = runner.val_dataloader.dataset
    classes, palette = dataset.metainfo['classes'], dataset.metainfo['palette']
    step = max(len(dataset) // max(num, 1), 1)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    runner.model.eval()
    for index in range(0, len(dataset), step)[:num]:
        with torch.no_grad():
            sample = runner.model.test_step(pseudo_collate([dataset[index]]))[0]
        picture = prediction_picture(
            mmcv.imread(sample.img_path, channel_order='rgb'),
            sample.gt_sem_seg.data[0].numpy(), sample.pred_sem_seg.data[0].numpy(), classes,
            palette)
        paths.append(osp.join(out_dir, osp.splitext(osp.basename(sample.img_path))[0] + '.png'))
        cv2.imwrite(paths[-1], picture[..., ::-1])
    return paths


def main(argv=None) -> dict:
    """Runs the demo; returns the validation metrics."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    checkpoint = pretrain(args)
    prepare_data(args.data_root)

    options = {}
    for loader in launch.DATALOADERS:
        options[f'{loader}.dataset.data_root'] = args.data_root
    if args.max_iters:
        options.update(_iteration_options(args.max_iters, 50))
    options.update(args.cfg_options or {})
    cfg = launch.load_config(CONFIG, options, args.work_dir, 'none')
    if checkpoint:
        # Stage 2 starts from stage 1's backbone (the config's init_cfg is None: a dict cannot
        # be merged into it through options).
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)

    from locat_mm.seg.checks import validate_config
    validate_config(cfg)
    runner = launch.build_runner(cfg)
    runner.train()
    minutes = (time.time() - start) / 60
    metrics = {key[len('val/'):]: buffer.current()
               for key, buffer in runner.message_hub.log_scalars.items()
               if key.startswith('val/')}
    classes = runner.val_dataloader.dataset.metainfo['classes']

    checkpoint = osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    log_file = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    overlays = write_predictions(runner, osp.join(cfg.work_dir, 'predictions'),
                                 args.num_overlays)
    print(f'\nDemo finished: pretraining and {cfg.train_cfg.max_iters} segmentation iterations '
          f'in {minutes:.1f} min on {args.threads} thread(s), '
          + ', '.join(f'{k} {metrics[k]:.2f}' for k in ('mIoU', 'aAcc', 'mAcc')))
    print(class_table(metrics, classes))
    print(f'  checkpoint: {checkpoint}')
    print(f'  log:        {log_file}')
    print(f'  pictures:   {osp.dirname(overlays[0]) if overlays else "(none)"} '
          f'({len(overlays)} PNG: image, ground truth, prediction; class colours below)')
    print(f'  test again: python tools/test.py {osp.relpath(CONFIG, REPO)} {checkpoint} '
          f'--cfg-options test_dataloader.dataset.data_root={args.data_root}')
    return metrics


if __name__ == '__main__':
    main()
