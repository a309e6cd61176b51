"""Damaged data files are named, before anything is written when the start-up checks see them
(issue 17, probe 5), and by the loading transform when they lie outside the checked sample."""
import os
import os.path as osp
import shutil

import pytest
from demo_helpers import DEMO_CONFIG, data_root_options, load_tool, make_tiny_data
from mmengine.config import Config
from mmengine.registry import init_default_scope

from locat_mm.seg.checks import InputCheckError, sample_evenly


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('data')))


@pytest.fixture
def broken_root(tiny_root, tmp_path):
    root = str(tmp_path / 'broken')
    shutil.copytree(tiny_root, root)
    return root


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
    work_dir = str(tmp_path / 'work_dir')
    with pytest.raises(InputCheckError) as error:
        load_tool('train').main([DEMO_CONFIG, '--work-dir', work_dir, '--cfg-options',
                                 *data_root_options(root)])
    assert repr(path) in str(error.value) and 'truncated or damaged' in str(error.value)
    assert not osp.exists(work_dir)


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
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': broken_root})
    launch.name_files_in_load_errors(cfg)
    dataset_cfg = cfg.train_dataloader.dataset.to_dict()
    # mmseg's generic class, which checks nothing when built (as ADE20K's).
    dataset_cfg.update(type='BaseSegDataset', img_suffix='.jpg', seg_map_suffix='.png')
    dataset = DATASETS.build(dataset_cfg)
    checked = sample_evenly(range(len(dataset)), 2)
    index = next(i for i in range(len(dataset)) if i not in checked)
    good = dataset[checked[0]]
    assert good['inputs'].shape[-2:] == (64, 64)
    annotation = truncate(dataset.get_data_info(index)['seg_map_path'], 0.5)
    with pytest.raises(DataFileError) as error:
        dataset[index]
    assert repr(annotation) in str(error.value) and 'LoadAnnotations' in str(error.value)


def test_wrapping_keeps_what_the_pipeline_gives(tiny_root):
    from mmseg.registry import DATASETS

    from locat_mm import launch
    init_default_scope('mmseg')
    plain = Config.fromfile(DEMO_CONFIG)
    plain.merge_from_dict({'val_dataloader.dataset.data_root': tiny_root})
    wrapped = plain.copy()
    launch.name_files_in_load_errors(wrapped)
    types = [t['type'] for t in wrapped.val_dataloader.dataset.pipeline]
    assert types == ['NameFileOnError', 'NameFileOnError', 'PackSegInputs']
    ours, theirs = (DATASETS.build(c.val_dataloader.dataset.to_dict())[0]
                    for c in (wrapped, plain))
    assert (ours['inputs'] == theirs['inputs']).all()
    assert (ours['data_samples'].gt_sem_seg.data == theirs['data_samples'].gt_sem_seg.data).all()
