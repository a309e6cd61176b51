"""The synthetic datasets: layout, determinism, labels, and that colour alone cannot solve them."""
import filecmp
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from locat_mm.datasets import (CLS_CLASSES, SEG_CLASSES, SEG_PALETTE, SHAPES, draw_scene,
                               make_synthetic_classification, make_synthetic_segmentation,
                               synthetic_dataset_ready)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = dict(num_train=40, num_val=12, size=64, seed=0)
CLS = dict(num_train=24, num_val=12, size=48, seed=0)


@pytest.fixture(scope='module')
def seg_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('seg'))
    make_synthetic_segmentation(root, **SEG)
    return root


@pytest.fixture(scope='module')
def flat_seg_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('flat_seg'))
    make_synthetic_segmentation(root, **SEG, fill='flat')
    return root


@pytest.fixture(scope='module')
def cls_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cls'))
    make_synthetic_classification(root, **CLS)
    return root


def _pairs(root, folder):
    names = sorted(os.listdir(osp.join(root, 'images', folder)))
    return [(osp.join(root, 'images', folder, n),
             osp.join(root, 'annotations', folder, n[:-4] + '.png')) for n in names]


def test_segmentation_layout_and_labels(seg_root):
    for folder, num in (('training', SEG['num_train']), ('validation', SEG['num_val'])):
        pairs = _pairs(seg_root, folder)
        assert len(pairs) == num
        for img_path, ann_path in pairs:
            assert img_path.endswith('.jpg')
            image, label = Image.open(img_path), Image.open(ann_path)
            assert image.mode == 'RGB' and label.mode == 'L'
            assert image.size == label.size == (SEG['size'], SEG['size'])
            assert np.array(label).max() < len(SEG_CLASSES)
    labels = np.stack([np.array(Image.open(a)) for _, a in _pairs(seg_root, 'training')])
    # Every class occurs, and objects are a sizeable part of the pixels.
    assert set(np.unique(labels)) == set(range(len(SEG_CLASSES)))
    assert 0.05 < (labels > 0).mean() < 0.6
    assert len(SEG_PALETTE) == len(SEG_CLASSES)


def test_classification_layout(cls_root):
    from mmpretrain.datasets import CustomDataset
    scanned = CustomDataset(data_root=cls_root, data_prefix='train', pipeline=[])
    listed = CustomDataset(data_root=cls_root, data_prefix='train', ann_file='meta/train.txt',
                           pipeline=[], metainfo=dict(classes=CLS_CLASSES))
    assert scanned.CLASSES == CLS_CLASSES == tuple(
        open(osp.join(cls_root, 'meta', 'classes.txt')).read().split())
    assert len(scanned) == CLS['num_train']
    # A folder scan and the ImageNet-style annotation file agree on every label.
    as_set = lambda ds: {(d['img_path'], int(d['gt_label'])) for d in ds.load_data_list()}
    assert as_set(scanned) == as_set(listed)
    val = CustomDataset(data_root=cls_root, data_prefix='val', pipeline=[])
    assert len(val) == CLS['num_val']
    assert np.bincount([int(d['gt_label']) for d in val.load_data_list()]).tolist() == \
        [CLS['num_val'] // len(CLS_CLASSES)] * len(CLS_CLASSES)
    assert all(p.endswith('.JPEG') for p in os.listdir(osp.join(cls_root, 'train', 'disc')))


def test_same_seed_same_bytes(seg_root, cls_root, tmp_path):
    make_synthetic_segmentation(str(tmp_path / 'seg'), **SEG)
    make_synthetic_classification(str(tmp_path / 'cls'), **CLS)
    for ours, again in ((seg_root, tmp_path / 'seg'), (cls_root, tmp_path / 'cls')):
        cmp = filecmp.dircmp(ours, str(again))
        stack = [cmp]
        while stack:
            node = stack.pop()
            assert not node.left_only and not node.right_only
            assert filecmp.cmpfiles(node.left, node.right, node.common_files,
                                    shallow=False)[0] == sorted(node.common_files)
            stack.extend(node.subdirs.values())


def test_seed_changes_images_and_count_does_not(seg_root, tmp_path):
    other = str(tmp_path / 'seed1')
    make_synthetic_segmentation(other, **dict(SEG, seed=1, num_train=3, num_val=1))
    first = _pairs(seg_root, 'training')[0][0]
    assert not filecmp.cmp(first, _pairs(other, 'training')[0][0], shallow=False)
    # Each image has its own seed: fewer images leave the first ones unchanged.
    fewer = str(tmp_path / 'fewer')
    make_synthetic_segmentation(fewer, **dict(SEG, num_train=3, num_val=1))
    for (a, b), (c, d) in zip(_pairs(seg_root, 'training'), _pairs(fewer, 'training')):
        assert filecmp.cmp(a, c, shallow=False) and filecmp.cmp(b, d, shallow=False)


def test_ready_marker(seg_root, tmp_path):
    assert synthetic_dataset_ready(seg_root, kind='seg', **SEG)
    assert not synthetic_dataset_ready(seg_root, kind='cls')
    assert not synthetic_dataset_ready(seg_root, kind='seg', num_train=41)
    assert not synthetic_dataset_ready(str(tmp_path), kind='seg')
    partial = str(tmp_path / 'partial')
    make_synthetic_segmentation(partial, **dict(SEG, num_train=2, num_val=1))
    os.remove(_pairs(partial, 'validation')[0][1])
    assert not synthetic_dataset_ready(partial, kind='seg')


def _miou(pred, gt, num_classes):
    ious = []
    for k in range(num_classes):
        union = ((pred == k) | (gt == k)).sum()
        if union:
            ious.append(((pred == k) & (gt == k)).sum() / union)
    return float(np.mean(ious))


def _colours_and_labels(pairs):
    pixels = np.concatenate([np.array(Image.open(i)).reshape(-1, 3) for i, _ in pairs])
    labels = np.concatenate([np.array(Image.open(a)).reshape(-1) for _, a in pairs])
    # 8 levels per channel: 512 colour bins.
    return (pixels // 32).astype(np.int64) @ np.array([64, 8, 1]), labels


def _colour_table_predictions(root):
    """A per-pixel colour -> label table fitted on the training set, applied to validation."""
    bins, labels = _colours_and_labels(_pairs(root, 'training'))
    counts = np.zeros((512, len(SEG_CLASSES)), dtype=np.int64)
    np.add.at(counts, (bins, labels), 1)
    bins, labels = _colours_and_labels(_pairs(root, 'validation'))
    return counts.argmax(1)[bins], labels


def test_colour_does_not_give_the_label(seg_root):
    """Patterned objects: colour finds neither the objects nor their class."""
    pred, labels = _colour_table_predictions(seg_root)
    # Background everywhere would score 1/7 of the background IoU; colour adds ~nothing.
    assert _miou(pred, labels, len(SEG_CLASSES)) < 0.2
    objects = labels > 0
    assert (pred[objects] == labels[objects]).mean() < 0.1


def test_flat_objects_stand_out_but_colour_does_not_give_the_class(flat_seg_root):
    """Flat fill: light objects on a darker background; which shape, colour cannot tell."""
    pred, labels = _colour_table_predictions(flat_seg_root)
    objects = labels > 0
    # Brightness separates objects from the background ...
    assert (pred[objects] > 0).mean() > 0.9 and (pred[~objects] == 0).mean() > 0.9
    # ... but the class is no better than always naming the most frequent one.
    most_frequent = np.bincount(labels[objects]).max() / objects.sum()
    assert (pred[objects] == labels[objects]).mean() < most_frequent
    image = np.stack([np.array(Image.open(i)) for i, _ in _pairs(flat_seg_root, 'training')])
    masks = np.stack([np.array(Image.open(a)) for _, a in _pairs(flat_seg_root, 'training')])
    assert image[masks == 0].max(-1).mean() < 128 <= image[masks > 0].max(-1).mean()


def test_classification_label_is_the_largest_object():
    """The classification images' object sizes: the labelled shape drawn last and largest."""
    from locat_mm.datasets.synthetic import _DISTRACTOR_RADIUS, _LABELLED_RADIUS
    for index in range(20):
        rng = np.random.default_rng(index)
        # Distinct classes, so every object's pixels can be counted from the label map.
        classes = [int(c) for c in rng.permutation(len(SHAPES))[:3]]
        _, label = draw_scene(rng, 64, classes, [_DISTRACTOR_RADIUS] * 2 + [_LABELLED_RADIUS],
                              fill='flat')
        areas = np.bincount(label.ravel(), minlength=len(SEG_CLASSES))
        labelled = areas[classes[-1] + 1]
        assert labelled > 0 and all(labelled > areas[c + 1] for c in classes[:-1]), areas


def test_distractors_and_fill_are_recorded(tmp_path):
    plain = make_synthetic_classification(str(tmp_path / 'plain'), **CLS)
    busy = make_synthetic_classification(str(tmp_path / 'busy'), **CLS, distractors=2,
                                         fill='flat')
    assert (plain['distractors'], plain['fill']) == (0, 'patterned')
    assert synthetic_dataset_ready(str(tmp_path / 'busy'), kind='cls', distractors=2,
                                   fill='flat')
    assert not synthetic_dataset_ready(str(tmp_path / 'busy'), kind='cls', distractors=0)
    assert busy['distractors'] == 2
    with pytest.raises(ValueError, match='Unknown fill'):
        make_synthetic_segmentation(str(tmp_path / 'bad'), **SEG, fill='glossy')


def test_cli_writes_both_kinds(tmp_path, capsys):
    script = osp.join(REPO, 'tools', 'dataset_converters', 'make_synthetic.py')
    args = ['--num-train', '6', '--num-val', '6', '--size', '32']
    # Once as a script (imports and sys.path as a user runs it), once in-process (fast).
    result = subprocess.run([sys.executable, script, 'seg', str(tmp_path / 'seg'), *args],
                            capture_output=True, text=True, check=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert 'Wrote seg dataset' in result.stdout
    spec = importlib.util.spec_from_file_location('make_synthetic', script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(['cls', str(tmp_path / 'cls'), *args, '--fill', 'flat', '--distractors', '2'])
    assert 'Wrote cls dataset' in capsys.readouterr().out
    for kind in ('seg', 'cls'):
        assert synthetic_dataset_ready(str(tmp_path / kind), kind=kind, num_train=6, size=32)
    assert synthetic_dataset_ready(str(tmp_path / 'cls'), kind='cls', fill='flat',
                                   distractors=2)


def test_mmseg_dataset_reads_it(seg_root):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='SyntheticShapesDataset', data_root=seg_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')]))
    assert len(dataset) == SEG['num_val']
    assert dataset.metainfo['classes'] == SEG_CLASSES
    sample = dataset[0]['data_samples']
    gt = sample.gt_sem_seg.data
    # Label 0 is the background class, not "ignore": no reduce_zero_label shift.
    expected = np.array(Image.open(sample.seg_map_path))
    assert np.array_equal(gt[0].numpy(), expected)


def test_radius_range_sets_the_object_size(tmp_path):
    """The demo draws larger objects than the default (the mini paper's) set, and records it."""
    sizes = dict(num_train=12, num_val=1, size=64, max_objects=1, fill='flat')
    make_synthetic_segmentation(str(tmp_path / 'default'), **sizes)
    make_synthetic_segmentation(str(tmp_path / 'large'), **sizes, radius_range=(0.3, 0.4))

    def object_fraction(root):
        return np.mean([np.array(Image.open(a)) > 0 for _, a in _pairs(root, 'training')])

    # Radius 12-30 % against 30-40 % of the side: about twice the area on average.
    assert object_fraction(str(tmp_path / 'large')) > 1.5 * object_fraction(
        str(tmp_path / 'default'))
    assert synthetic_dataset_ready(str(tmp_path / 'large'), kind='seg', radius_range=(0.3, 0.4))
    assert not synthetic_dataset_ready(str(tmp_path / 'default'), kind='seg',
                                       radius_range=(0.3, 0.4))
    assert synthetic_dataset_ready(str(tmp_path / 'default'), kind='seg',
                                   radius_range=(0.12, 0.3))


def _files(root):
    return sorted(osp.relpath(osp.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def test_a_smaller_set_replaces_the_previous_one_whole(tmp_path):
    """Issue 17, probe 4: 6 then 3 training images left 6 of mixed sizes behind."""
    root = str(tmp_path / 'set')
    make_synthetic_segmentation(root, num_train=6, num_val=2, size=32)
    make_synthetic_segmentation(root, num_train=3, num_val=1, size=48)
    fresh = str(tmp_path / 'fresh')
    make_synthetic_segmentation(fresh, num_train=3, num_val=1, size=48)
    assert _files(root) == _files(fresh)
    assert {Image.open(p).size for p, _ in _pairs(root, 'training')} == {(48, 48)}
    # A classification set in place of a segmentation one: nothing of the old kind stays.
    make_synthetic_classification(root, num_train=2, num_val=1, size=32)
    assert not osp.exists(osp.join(root, 'images'))
    assert synthetic_dataset_ready(root, kind='cls', num_train=2, num_val=1, size=32)
    # Only the dataset folder itself is left next to it: no temporary folder.
    assert sorted(os.listdir(tmp_path)) == ['fresh', 'set']


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path):
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='holds no synthetic dataset'):
        make_synthetic_segmentation(str(mine), num_train=2, num_val=1, size=32)
    assert _files(str(mine)) == ['notes.txt']
    # A previous set with a file of the user's in it: refused too, the set untouched.
    root = str(tmp_path / 'set')
    make_synthetic_segmentation(root, num_train=2, num_val=1, size=32)
    (tmp_path / 'set' / 'images' / 'training' / 'extra.jpg').write_bytes(b'mine')
    before = _files(root)
    with pytest.raises(FileExistsError, match='extra.jpg'):
        make_synthetic_segmentation(root, num_train=3, num_val=1, size=32)
    assert _files(root) == before
    assert sorted(os.listdir(tmp_path)) == ['mine', 'set']


def test_cli_refuses_a_used_folder_with_a_message(tmp_path):
    script = osp.join(REPO, 'tools', 'dataset_converters', 'make_synthetic.py')
    (tmp_path / 'paper.pdf').write_bytes(b'%PDF')
    result = subprocess.run([sys.executable, script, 'seg', str(tmp_path), '--num-train', '2'],
                            capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert 'holds no synthetic dataset' in result.stderr
    assert os.listdir(tmp_path) == ['paper.pdf']


def test_a_failed_write_leaves_the_previous_set(tmp_path, monkeypatch):
    root = str(tmp_path / 'set')
    make_synthetic_segmentation(root, num_train=2, num_val=1, size=32)
    saved = str(tmp_path / 'saved')
    shutil.copytree(root, saved)
    import locat_mm.datasets.synthetic as synthetic
    save_jpeg, calls = synthetic._save_jpeg, []

    def fail_at_the_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError('disk full')
        save_jpeg(*args)

    monkeypatch.setattr(synthetic, '_save_jpeg', fail_at_the_third)
    with pytest.raises(RuntimeError, match='disk full'):
        make_synthetic_segmentation(root, num_train=5, num_val=1, size=48)
    assert _files(root) == _files(saved)
    assert not filecmp.dircmp(root, saved).diff_files
    for sub in ('images/training', 'annotations/training'):
        match, mismatch, errors = filecmp.cmpfiles(osp.join(root, sub), osp.join(saved, sub),
                                                   os.listdir(osp.join(saved, sub)),
                                                   shallow=False)
        assert not mismatch and not errors
    assert sorted(os.listdir(tmp_path)) == ['saved', 'set']
