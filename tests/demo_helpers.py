"""Shared by the tests that run the demo config: tiny data, tiny schedules, the tools."""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import List

from locat_mm.datasets import make_synthetic_segmentation

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs', 'locat_vit_demo_upernet_synthetic.py')
# The demo's kind of data (tools/demo.py's DATASET: light flat objects, at most 2, of radius
# 20-35 % of the 64 px side) in a tiny number.
TINY_DATA = dict(num_train=6, num_val=2, size=64, max_objects=2, radius_range=(0.2, 0.35),
                 fill='flat', seed=0)


def make_tiny_data(root: str) -> str:
    """Writes a 6 + 2 image, 64 px synthetic segmentation set at ``root``; returns ``root``."""
    make_synthetic_segmentation(root, **TINY_DATA)
    return root


def data_root_options(data_root: str) -> List[str]:
    """``--cfg-options`` entries pointing all three dataloaders of the demo config at a root."""
    return [f'{loader}.dataset.data_root={data_root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def tiny_run_options(data_root: str, iters: int, checkpoint_interval: int = 0) -> List[str]:
    """``--cfg-options`` for ``iters`` iterations of batch 2 with a final validation.

    The warm-up takes the first iteration; checkpoints every ``checkpoint_interval``
    iterations (default: at the end only).
    """
    return data_root_options(data_root) + [
        'train_dataloader.batch_size=2',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={checkpoint_interval or iters}',
        'default_hooks.logger.interval=1',
        'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1',
        f'param_scheduler.1.end={iters}',
    ]


def load_tool(name: str) -> ModuleType:
    """Imports ``tools/<name>.py`` as a module (its ``main(argv)`` runs in-process)."""
    spec = importlib.util.spec_from_file_location(f'tools_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
