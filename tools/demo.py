"""The quick start: train a small LocAtViT + UperNet on synthetic shapes, on CPU, in minutes.

    python tools/demo.py [--data-root data/synthetic_seg] [--work-dir work_dirs/demo]
                         [--max-iters N] [--cfg-options k=v ...]

1. writes the synthetic segmentation dataset (``locat_mm.datasets``) unless a complete one
   with the same parameters is already there;
2. trains ``configs/locat_vit_demo_upernet_synthetic.py`` with mmengine's Runner;
3. validates (mIoU) and paints a few predictions next to their ground truth (mmseg's
   ``SegLocalVisualizer``);
4. prints where the checkpoint, the log and the pictures are.
"""
import argparse
import glob
import os
import os.path as osp
import time

from mmengine.config import DictAction

from locat_mm import launch
from locat_mm.datasets import make_synthetic_segmentation, synthetic_dataset_ready

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'locat_vit_demo_upernet_synthetic.py')
#: The dataset the demo config expects (its _base_/datasets/synthetic_shapes.py).
DATASET = dict(num_train=400, num_val=60, size=96, seed=0)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'synthetic_seg'))
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    parser.add_argument('--max-iters', type=int, help='training iterations (default: the '
                        "config's)")
    parser.add_argument('--num-overlays', type=int, default=4,
                        help='validation images to paint')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def prepare_data(root: str) -> None:
    """Writes the dataset unless a complete one with the demo's parameters is at ``root``."""
    if synthetic_dataset_ready(root, kind='seg', **DATASET):
        print(f'Dataset: {root} (present)')
        return
    start = time.time()
    make_synthetic_segmentation(root, **DATASET)
    print(f'Dataset: wrote {root} in {time.time() - start:.1f}s')


def main(argv=None) -> dict:
    """Runs the demo; returns the validation metrics."""
    args = parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    prepare_data(args.data_root)

    options = {}
    for loader in launch.DATALOADERS:
        options[f'{loader}.dataset.data_root'] = args.data_root
    if args.max_iters:
        options.update({
            'train_cfg.max_iters': args.max_iters,
            'train_cfg.val_interval': args.max_iters,
            'default_hooks.checkpoint.interval': args.max_iters,
            'param_scheduler.1.end': args.max_iters,
        })
    # Paint every n-th validation image during the final validation.
    options['default_hooks.visualization.draw'] = True
    options['default_hooks.visualization.interval'] = max(
        DATASET['num_val'] // max(args.num_overlays, 1), 1)
    options.update(args.cfg_options or {})
    cfg = launch.load_config(CONFIG, options, args.work_dir, 'none')

    from locat_mm.seg.checks import validate_config
    validate_config(cfg)
    start = time.time()
    runner = launch.build_runner(cfg)
    runner.train()
    minutes = (time.time() - start) / 60
    metrics = {key[len('val/'):]: buffer.current()
               for key, buffer in runner.message_hub.log_scalars.items()
               if key.startswith('val/') and key[4:] in ('aAcc', 'mIoU', 'mAcc')}

    checkpoint = osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    log_file = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    overlays = sorted(glob.glob(osp.join(runner.log_dir, 'vis_data', 'vis_image', '*.png')))
    print(f'\nDemo finished: {cfg.train_cfg.max_iters} iterations in {minutes:.1f} min, '
          + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
    print(f'  checkpoint: {checkpoint}')
    print(f'  log:        {log_file}')
    print(f'  overlays:   {osp.dirname(overlays[0]) if overlays else "(none)"} '
          f'({len(overlays)} PNG: ground truth left, prediction right)')
    print(f'  test again: python tools/test.py {osp.relpath(CONFIG, REPO)} {checkpoint} '
          f'--cfg-options test_dataloader.dataset.data_root={args.data_root}')
    return metrics


if __name__ == '__main__':
    main()
