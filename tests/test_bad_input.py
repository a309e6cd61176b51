"""Bad setups fail early, with a message saying what is wrong and what to do.

Through ``tools/train.py`` the error comes before the Runner exists, so the work dir is never
created; the dataset class raises the same errors when built by other launchers (``mim``).
"""
import os
import os.path as osp
import shutil

import pytest
import torch
from demo_helpers import DEMO_CONFIG, data_root_options, load_tool, make_tiny_data
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from PIL import Image

from locat_mm.seg.checks import InputCheckError, sample_evenly


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('data')))


@pytest.fixture
def broken_root(tiny_root, tmp_path):
    """A private copy of the tiny dataset, to damage."""
    root = str(tmp_path / 'broken')
    shutil.copytree(tiny_root, root)
    return root


def _train_fails(tmp_path, options, *messages, config=DEMO_CONFIG):
    train = load_tool('train')
    work_dir = str(tmp_path / 'work_dir')
    with pytest.raises(InputCheckError) as error:
        train.main([config, '--work-dir', work_dir, '--cfg-options', *options])
    for message in messages:
        assert message in str(error.value)
    assert not osp.exists(work_dir)
    return str(error.value)


def _first_annotation(root):
    folder = osp.join(root, 'annotations', 'training')
    return osp.join(folder, sorted(os.listdir(folder))[0])


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'no_such_dir')
    _train_fails(tmp_path, data_root_options(missing), f"Data root '{missing}'",
                 'does not exist', 'make_synthetic.py seg', '--cfg-options')


def test_missing_annotation(tmp_path, broken_root):
    annotation = _first_annotation(broken_root)
    os.remove(annotation)
    _train_fails(tmp_path, data_root_options(broken_root), f"Annotation '{annotation}'",
                 'is missing', 'add it, or remove the image')


def test_annotation_of_another_size(tmp_path, broken_root):
    annotation = _first_annotation(broken_root)
    Image.open(annotation).resize((32, 48)).save(annotation)
    _train_fails(tmp_path, data_root_options(broken_root), 'is 48x32 (HxW) but its image',
                 'is 64x64', "must have its image's size")


def test_num_classes_differs_from_dataset(tmp_path, tiny_root):
    _train_fails(tmp_path, data_root_options(tiny_root) + ['model.decode_head.num_classes=5'],
                 'model.decode_head.num_classes is 5 but the dataset has 7 classes',
                 'model.decode_head.num_classes=7')


def test_num_classes_differs_from_checkpoint(tmp_path, tiny_root):
    checkpoint = str(tmp_path / 'ade_head.pth')
    torch.save({'state_dict': {'decode_head.conv_seg.weight': torch.zeros(150, 64, 1, 1)}},
               checkpoint)
    _train_fails(tmp_path, data_root_options(tiny_root) + [f'load_from={checkpoint}'],
                 '150-class decode head', 'num_classes is 7',
                 "prefix='backbone.'")


def test_crop_larger_than_resized_images(tmp_path, tiny_root):
    # The demo config with a scale-jitter-and-crop pipeline (the demo itself trains whole
    # images): a resize to at most 1.5 x 64 = 96 px cannot fill a 112 px crop.
    config = tmp_path / 'crop_config.py'
    config.write_text(
        f'_base_ = {DEMO_CONFIG!r}\n'
        "train_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), "
        "dict(type='LoadAnnotations'), dict(type='RandomResize', scale=(64, 64), "
        "ratio_range=(1.0, 1.5), keep_ratio=True), dict(type='RandomCrop', "
        "crop_size=(112, 112)), dict(type='PackSegInputs')]))\n")
    _train_fails(tmp_path, data_root_options(tiny_root), 'at most 96x96 after the train pipeline',
                 'crop_size 112x112', 'lower crop_size', config=str(config))


def _build(root, pipeline):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    return DATASETS.build(dict(
        type='SyntheticShapesDataset', data_root=root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=pipeline))


def test_dataset_class_checks_when_built(tmp_path, broken_root):
    """The mim path: the dataset itself raises, e.g. for images smaller than the crop."""
    crop_only = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                 dict(type='RandomCrop', crop_size=(96, 96))]
    with pytest.raises(InputCheckError, match=r'is 64x64 \(HxW\), at most 64x64 .* crop_size '
                       r'96x96'):
        _build(broken_root, crop_only)
    with pytest.raises(InputCheckError, match='does not exist'):
        _build(str(tmp_path / 'nowhere'), crop_only)
    os.remove(_first_annotation(broken_root))
    with pytest.raises(InputCheckError, match='is missing'):
        _build(broken_root, [])


# ---------------------------------------------------------------- damaged files (issue 17, 5)
def truncate(path: str, fraction: float) -> str:
    """Keeps the first ``fraction`` of a file's bytes, as an interrupted copy does."""
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * fraction)])
    return path


def nth_file(root: str, folder: str, index: int) -> str:
    folder = osp.join(root, folder)
    return osp.join(folder, sorted(os.listdir(folder))[index])


def train_fails_naming(tmp_path, root, path):
    _train_fails(tmp_path, data_root_options(root), repr(path), 'truncated or damaged')


def test_image_cut_in_its_header_is_named(tmp_path, broken_root):
    # PIL's own error here is a bare `OSError: Truncated File Read`.
    image = truncate(nth_file(broken_root, 'images/training', 1), 0.05)
    train_fails_naming(tmp_path, broken_root, image)


def test_annotation_cut_in_its_data_is_named_before_the_work_dir(tmp_path, broken_root):
    # Its header is whole: a check that reads headers only lets it through.
    annotation = truncate(nth_file(broken_root, 'annotations/training', 2), 0.5)
    train_fails_naming(tmp_path, broken_root, annotation)


def test_validation_image_is_checked_before_training(tmp_path, broken_root):
    image = truncate(nth_file(broken_root, 'images/validation', 0), 0.5)
    train_fails_naming(tmp_path, broken_root, image)


def test_a_file_outside_the_checked_sample_is_named_when_loaded(tmp_path, broken_root):
    from mmseg.registry import DATASETS

    from locat_mm import launch
    from locat_mm.engine import DataFileError
    init_default_scope('mmseg')
    dataset_cfg = Config.fromfile(DEMO_CONFIG).train_dataloader.dataset.to_dict()
    # mmseg's generic class, which checks nothing when built (as ADE20K's).
    dataset_cfg.update(type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png',
                       data_root=broken_root)
    launch.wrap_loading_transforms(dataset_cfg)
    dataset = DATASETS.build(dataset_cfg)
    checked = sample_evenly(range(len(dataset)), 2)
    index = next(i for i in range(len(dataset)) if i not in checked)
    good = dataset[checked[0]]
    assert good['inputs'].shape[-2:] == (64, 64)
    annotation = truncate(dataset.get_data_info(index)['seg_map_path'], 0.5)
    with pytest.raises(DataFileError) as error:
        dataset[index]
    assert repr(annotation) in str(error.value) and 'LoadAnnotations' in str(error.value)


def test_the_runner_loads_the_same_through_the_wrapper_and_dumps_the_plain_config(
        tmp_path, tiny_root):
    from mmseg.registry import DATASETS

    from locat_mm import launch
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.merge_from_dict({**dict(o.split('=', 1) for o in data_root_options(tiny_root)),
                         'work_dir': str(tmp_path / 'wd')})
    runner = launch.build_runner(cfg)
    wrapped = runner._val_dataloader['dataset']
    assert [t['type'] for t in wrapped['pipeline']] == [
        'NameFileOnError', 'NameFileOnError', 'PackSegInputs']
    # The dumped config (what inferencers read) keeps the plain transforms.
    dumped = Config.fromfile(osp.join(str(tmp_path / 'wd'), osp.basename(DEMO_CONFIG)))
    assert dumped.val_dataloader.dataset.pipeline[0]['type'] == 'LoadImageFromFile'
    init_default_scope('mmseg')
    plain = dict(Config.fromfile(DEMO_CONFIG).val_dataloader.dataset.to_dict(),
                 data_root=tiny_root)
    ours, theirs = (DATASETS.build(ConfigDict(d).to_dict())[0] for d in (wrapped, plain))
    assert (ours['inputs'] == theirs['inputs']).all()
    assert (ours['data_samples'].gt_sem_seg.data == theirs['data_samples'].gt_sem_seg.data).all()
