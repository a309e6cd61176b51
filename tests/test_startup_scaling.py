"""tools/train.py's start-up opens a bounded number of data files, however large the dataset.

Counted with Python's audit hook ('open' events under the data root) from the command line to
the point where training would start: input checks, Runner, train and val dataloaders.
"""
import os
import os.path as osp
import sys
from typing import Tuple

import numpy as np
import pytest
from demo_helpers import REPO, load_tool
from PIL import Image

from locat_mm.seg.checks import MAX_CHECKED_IMAGES

CONFIG = osp.join(REPO, 'configs', 'locat_vit_t_upernet_cocostuff164k.py')


def make_cocostuff_layout(root: str, num_train: int, num_val: int, size: int = 32) -> str:
    """COCO-Stuff-164k's folders and file names, every image the same tiny picture."""
    rng = np.random.default_rng(0)
    for split, count in (('train2017', num_train), ('val2017', num_val)):
        img_dir = osp.join(root, 'images', split)
        ann_dir = osp.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            osp.join(img_dir, 'template.jpg'))
        Image.fromarray(rng.integers(0, 171, (size, size), dtype=np.uint8)).save(
            osp.join(ann_dir, 'template.png'))
        image = open(osp.join(img_dir, 'template.jpg'), 'rb').read()
        label = open(osp.join(ann_dir, 'template.png'), 'rb').read()
        os.remove(osp.join(img_dir, 'template.jpg'))
        os.remove(osp.join(ann_dir, 'template.png'))
        for i in range(count):
            with open(osp.join(img_dir, f'{i:012d}.jpg'), 'wb') as f:
                f.write(image)
            with open(osp.join(ann_dir, f'{i:012d}_labelTrainIds.png'), 'wb') as f:
                f.write(label)
    return root


def count_startup_opens(root: str, work_dir: str) -> Tuple[int, int]:
    """(files opened under ``root``, files opened in all) by tools/train.py up to training."""
    from mmengine.runner import Runner

    opened, recording = [], [True]

    def audit(event, args):
        if recording[0] and event == 'open' and isinstance(args[0], str):
            opened.append(args[0])

    def start(runner):
        runner.train_loop  # builds the train dataloader (and its dataset)
        runner.val_loop
        raise StopIteration('start-up done')

    original = Runner.train
    Runner.train = start
    sys.addaudithook(audit)  # cannot be removed: it stops recording below instead
    try:
        load_tool('train').main([
            CONFIG, '--work-dir', work_dir, '--cfg-options',
            *[f'{loader}.dataset.data_root={root}'
              for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')],
            'model.backbone.init_cfg=None', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'experiment_name=startup',
            'visualizer.name=startup'])
    except StopIteration:
        pass
    finally:
        Runner.train = original
        recording[0] = False
    root = osp.abspath(root)
    return sum(osp.abspath(p).startswith(root) for p in opened), len(opened)


@pytest.mark.slow
def test_startup_opens_a_bounded_sample(tmp_path):
    root = make_cocostuff_layout(str(tmp_path / 'coco'), num_train=300, num_val=300)
    data_opens, total = count_startup_opens(root, str(tmp_path / 'wd'))
    print(f'start-up on 600 images: {data_opens} data files opened ({total} files in all)')
    # Three checked dataloaders (train, val, test), an image and its label each; checking
    # every file would open 2 * (300 + 300 + 300).
    assert 0 < data_opens <= 3 * 2 * MAX_CHECKED_IMAGES < 2 * 900
