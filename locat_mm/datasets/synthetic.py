"""Writes the synthetic datasets in the on-disk layouts of ADE20K and ImageNet.

Both are built in seconds from :mod:`locat_mm.datasets.drawing`, with no download, and are
deterministic: every image is seeded by ``(seed, split, index)``, so the same arguments give
the same bytes, and adding images does not change the existing ones. A ``synthetic.json``
marker records the arguments; :func:`synthetic_dataset_ready` checks it and the files, so
callers (``tools/demo.py``) can skip an existing, complete dataset.

A set is written into a new folder next to ``root`` and then put in its place, so ``root``
holds exactly one set, complete: a previous set there is replaced as a whole (no file of it
stays behind), and a folder with anything else in it is refused, never emptied.
"""
import contextlib
import json
import os
import os.path as osp
import re
import shutil
import tempfile
from typing import Dict, Iterator, List, Tuple

import numpy as np
from PIL import Image

from .drawing import FILLS, SHAPES, draw_scene

#: Segmentation classes: index 0 is a real class (background), so ``reduce_zero_label=False``.
SEG_CLASSES: Tuple[str, ...] = ('background', ) + SHAPES
SEG_PALETTE: List[List[int]] = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25],
                                [0, 130, 200], [245, 130, 48], [145, 30, 180]]
#: Classification classes: the shapes, alphabetical (the order of a folder scan).
CLS_CLASSES: Tuple[str, ...] = SHAPES

MARKER = 'synthetic.json'
# Radius ranges (fractions of the side) of the classification set's objects: the smallest
# labelled object is clearly larger than the largest distractor.
_LABELLED_RADIUS = (0.28, 0.42)
_DISTRACTOR_RADIUS = (0.1, 0.16)
_SEG_SPLITS = {'train': 'training', 'val': 'validation'}
_SPLIT_IDS = {'train': 0, 'val': 1}
_KIND_IDS = {'seg': 0, 'cls': 1}
# Every file either kind of set writes (paths relative to its root, '/'-separated).
_SET_FILE = re.compile(
    r'^(synthetic\.json|meta/(train|val|classes)\.txt'
    r'|(images|annotations)/(training|validation)/synth_(train|val)_\d{5}\.(jpg|png)'
    r'|(train|val)/[a-z]+/(train|val)_\d{5}\.JPEG)$')


def _rng(seed: int, kind: str, split: str, index: int) -> np.random.Generator:
    """Independent stream per image, so the data do not depend on how many images there are."""
    return np.random.default_rng([seed, _KIND_IDS[kind], _SPLIT_IDS[split], index])


def _save_jpeg(image: np.ndarray, path: str) -> None:
    # Fixed quality and no optimisation pass: PIL's encoder is then byte-for-byte repeatable.
    Image.fromarray(image).save(path, format='JPEG', quality=95)


def _check_fill(fill: str) -> None:
    if fill not in FILLS:
        raise ValueError(f'Unknown fill {fill!r}: choose from {FILLS}')


def _write_marker(root: str, params: dict) -> None:
    with open(osp.join(root, MARKER), 'w') as f:
        json.dump(params, f, indent=2, sort_keys=True)


def _foreign_files(root: str) -> List[str]:
    """Files under ``root`` that no synthetic set writes (relative paths)."""
    foreign = []
    for folder, _, files in os.walk(root):
        for name in files:
            rel = osp.relpath(osp.join(folder, name), root).replace(os.sep, '/')
            if not _SET_FILE.match(rel):
                foreign.append(rel)
    return sorted(foreign)


def _check_replaceable(root: str) -> None:
    """Raises unless ``root`` is absent, empty, or a synthetic set and nothing else."""
    if not osp.exists(root):
        return
    if not osp.isdir(root):
        raise FileExistsError(f'{root} exists and is not a folder: choose another output path')
    if not os.listdir(root):
        return
    if not osp.isfile(osp.join(root, MARKER)):
        raise FileExistsError(
            f'{root} is not empty and holds no synthetic dataset (no {MARKER}): write the set '
            'to a new or empty folder; nothing was changed.')
    foreign = _foreign_files(root)
    if foreign:
        raise FileExistsError(
            f'{root} holds a synthetic dataset and files it did not write ({", ".join(foreign[:3])}'
            f'{", ..." if len(foreign) > 3 else ""}): move them out or choose another folder; '
            'the set is replaced as a whole and they would be lost. Nothing was changed.')


@contextlib.contextmanager
def _replacing(root: str) -> Iterator[str]:
    """Yields a new folder next to ``root`` to write a set into; once written it takes the
    place of ``root`` (whose previous set, if any, is removed). On an error nothing changes."""
    root = osp.abspath(root)
    _check_replaceable(root)
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    new = tempfile.mkdtemp(dir=parent, prefix=f'.{osp.basename(root)}.new-')
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(new, 0o777 & ~umask)  # mkdtemp's folder is private; a dataset folder is not
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    if osp.exists(root):
        old = new + '.old'
        os.rename(root, old)
        os.rename(new, root)
        shutil.rmtree(old)
    else:
        os.rename(new, root)


def _seg_files(root: str, split: str, num: int) -> List[Tuple[str, str]]:
    folder = _SEG_SPLITS[split]
    return [(osp.join(root, 'images', folder, f'synth_{split}_{i:05d}.jpg'),
             osp.join(root, 'annotations', folder, f'synth_{split}_{i:05d}.png'))
            for i in range(num)]


def _cls_files(root: str, split: str, num: int) -> List[Tuple[str, int]]:
    # Round-robin over classes keeps them balanced for any ``num``.
    return [(osp.join(root, split, CLS_CLASSES[i % len(CLS_CLASSES)], f'{split}_{i:05d}.JPEG'),
             i % len(CLS_CLASSES)) for i in range(num)]


def make_synthetic_segmentation(root: str,
                                num_train: int = 400,
                                num_val: int = 60,
                                size: int = 96,
                                max_objects: int = 3,
                                fill: str = 'patterned',
                                seed: int = 0,
                                radius_range: Tuple[float, float] = (0.12, 0.3)
                                ) -> Dict[str, object]:
    """Writes a segmentation dataset in ADE20K's layout.

    ``images/{training,validation}/*.jpg`` (RGB, ``size`` x ``size``) and
    ``annotations/{training,validation}/*.png`` (uint8, 0 = background, ``k`` = ``SEG_CLASSES[k]``;
    no ignore pixels), plus the ``synthetic.json`` marker.

    Args:
        root (str): Output folder: new, empty, or holding a previous synthetic set (which
            is replaced as a whole); anything else there is refused (``FileExistsError``).
        num_train (int): Training images.
        num_val (int): Validation images.
        size (int): Image side in pixels.
        max_objects (int): Each image has 1 to ``max_objects`` objects.
        fill (str): How objects are filled, one of ``locat_mm.datasets.FILLS``.
        seed (int): Seed of the whole dataset.
        radius_range (tuple[float, float]): Object radius range, as fractions of ``size``.

    Returns:
        dict: The parameters written to the marker, with ``kind='seg'``.
    """
    _check_fill(fill)
    params = dict(kind='seg', num_train=num_train, num_val=num_val, size=size,
                  max_objects=max_objects, fill=fill, seed=seed, radius_range=list(radius_range),
                  classes=list(SEG_CLASSES))
    with _replacing(root) as out:
        for split, num in (('train', num_train), ('val', num_val)):
            for sub in ('images', 'annotations'):
                os.makedirs(osp.join(out, sub, _SEG_SPLITS[split]), exist_ok=True)
            for index, (img_path, ann_path) in enumerate(_seg_files(out, split, num)):
                rng = _rng(seed, 'seg', split, index)
                shapes = list(rng.integers(len(SHAPES), size=rng.integers(1, max_objects + 1)))
                image, label = draw_scene(rng, size, shapes, radius_range=radius_range,
                                          fill=fill)
                _save_jpeg(image, img_path)
                Image.fromarray(label).save(ann_path, format='PNG')
        _write_marker(out, params)
    return params


def make_synthetic_classification(root: str,
                                  num_train: int = 600,
                                  num_val: int = 120,
                                  size: int = 64,
                                  distractors: int = 0,
                                  fill: str = 'patterned',
                                  seed: int = 0) -> Dict[str, object]:
    """Writes a classification dataset in ImageNet's layout.

    ``{train,val}/<class>/*.JPEG`` with one large object per image whose shape is the class
    (radius 28-42 % of the side, drawn last so nothing hides it) and up to ``distractors``
    small objects of random shapes (radius 10-16 %) anywhere: the label is the shape of the
    largest object, so it depends on what is in the image and not on where. Plus
    ``meta/{train,val}.txt`` (``<class>/<file> <label>`` lines, relative to the split folder, as
    ImageNet's) and ``meta/classes.txt``. Both ``CustomDataset(data_prefix='train')`` (folder
    scan) and ``CustomDataset(ann_file='meta/train.txt', data_prefix='train')`` read it with the
    same label indices.

    Args:
        root (str): Output folder, as for :func:`make_synthetic_segmentation`.
        num_train (int): Training images in total (classes balanced round-robin).
        num_val (int): Validation images in total.
        size (int): Image side in pixels.
        distractors (int): Each image has 0 to ``distractors`` small objects besides the
            labelled one.
        fill (str): How objects are filled, one of ``locat_mm.datasets.FILLS``.
        seed (int): Seed of the whole dataset.

    Returns:
        dict: The parameters written to the marker, with ``kind='cls'``.
    """
    _check_fill(fill)
    params = dict(kind='cls', num_train=num_train, num_val=num_val, size=size,
                  distractors=distractors, fill=fill, seed=seed, classes=list(CLS_CLASSES))
    with _replacing(root) as out:
        os.makedirs(osp.join(out, 'meta'), exist_ok=True)
        for split, num in (('train', num_train), ('val', num_val)):
            for name in CLS_CLASSES:
                os.makedirs(osp.join(out, split, name), exist_ok=True)
            lines = []
            for index, (path, label) in enumerate(_cls_files(out, split, num)):
                rng = _rng(seed, 'cls', split, index)
                extra = list(rng.integers(len(SHAPES), size=rng.integers(distractors + 1)))
                image, _ = draw_scene(rng, size, extra + [label],
                                      radius_range=[_DISTRACTOR_RADIUS] * len(extra) +
                                      [_LABELLED_RADIUS], fill=fill)
                _save_jpeg(image, path)
                lines.append(f'{osp.relpath(path, osp.join(out, split))} {label}\n')
            with open(osp.join(out, 'meta', f'{split}.txt'), 'w') as f:
                f.writelines(lines)
        with open(osp.join(out, 'meta', 'classes.txt'), 'w') as f:
            f.writelines(f'{name}\n' for name in CLS_CLASSES)
        _write_marker(out, params)
    return params


def synthetic_dataset_ready(root: str, **params) -> bool:
    """True when ``root`` holds a complete synthetic dataset made with these parameters.

    Args:
        root (str): Dataset folder.
        **params: ``kind`` (``'seg'`` or ``'cls'``) and any arguments of the matching
            ``make_synthetic_*`` function; those given must equal the recorded ones (a tuple
            equals the list JSON records).
    """
    try:
        with open(osp.join(root, MARKER)) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return False
    if any(recorded.get(key) != (list(value) if isinstance(value, tuple) else value)
           for key, value in params.items()):
        return False
    if recorded['kind'] == 'seg':
        paths = [p for split in _SEG_SPLITS for pair in
                 _seg_files(root, split, recorded[f'num_{split}']) for p in pair]
    else:
        paths = [path for split in _SPLIT_IDS for path, _ in
                 _cls_files(root, split, recorded[f'num_{split}'])]
    return all(osp.isfile(p) for p in paths)
