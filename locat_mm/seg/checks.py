"""Checks of a segmentation setup that turn late, cryptic failures into early, clear errors.

Each check raises :class:`InputCheckError` saying what is wrong and what to do. They run in two
places: ``tools/train.py`` calls :func:`validate_config` before it builds the Runner (so a bad
setup fails before anything is written to the work dir), and ``SyntheticShapesDataset`` runs
the data checks when it is built (so ``mim train`` and other launchers fail clearly too).

The data checks decode a bounded sample of the files (:data:`MAX_CHECKED_IMAGES` image/label
pairs per dataset, spread over it), on rank 0 only: start-up costs the same for 2k images as
for COCO-Stuff's 164k, on one GPU or 64 (decoding every file of COCO-Stuff would take many
minutes at every start). A damaged file in the sample is named before anything is written; one
outside it fails when the pipeline loads it, and the launchers make that error name the file
too (``locat_mm.launch.name_files_in_load_errors``).
"""
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict
from PIL import Image

_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: Image/label pairs the data checks open per dataset.
MAX_CHECKED_IMAGES = 64


class InputCheckError(ValueError):
    """A dataset, checkpoint or config that cannot work; the message says how to fix it."""


def check_data_root(dataset_cfg: dict, where: str) -> None:
    """Raises if the dataset's ``data_root`` or its image folder does not exist.

    Args:
        dataset_cfg (dict): A dataset config (``data_root``, ``data_prefix.img_path``).
        where (str): Where the config sits, e.g. ``'train_dataloader.dataset'``, for the message.
    """
    data_root = dataset_cfg.get('data_root') or ''
    if data_root and not osp.isdir(data_root):
        raise InputCheckError(
            f'Data root {data_root!r} ({where}.data_root) does not exist. Prepare the dataset '
            f'there (see docs/datasets or, for the synthetic one, `python tools/dataset_'
            f'converters/make_synthetic.py seg {data_root}`), or point the config at it with '
            f'--cfg-options {where}.data_root=PATH.')
    img_dir = (dataset_cfg.get('data_prefix') or {}).get('img_path')
    if img_dir is not None and not osp.isdir(osp.join(data_root, img_dir)):
        raise InputCheckError(
            f'Image folder {osp.join(data_root, img_dir)!r} ({where}.data_prefix.img_path) does '
            'not exist: check data_prefix against the dataset layout on disk.')


def image_size(path: str, what: str = 'Image') -> Tuple[int, int]:
    """(height, width) of an image file, decoded whole so that a damaged file is found.

    Args:
        path (str): The file.
        what (str): What it is (``'Image'``, ``'Annotation'``), for the message.

    Raises:
        InputCheckError: The file cannot be decoded (truncated, damaged, not an image); the
            message names it.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputCheckError(
            f'{what} {path!r} cannot be read ({type(err).__name__}: {err}): it is truncated '
            'or damaged. Re-create or re-download it, or remove it (and its image or label) '
            'from the dataset.') from err


def check_annotations(data_list: Iterable[dict]) -> List[Tuple[int, int]]:
    """Raises if an image has no annotation file, or one of another size.

    Args:
        data_list (Iterable[dict]): mmseg data infos (``img_path``, ``seg_map_path``).

    Returns:
        list[tuple[int, int]]: (height, width) of every image, in order.
    """
    sizes = []
    for info in data_list:
        img_size = image_size(info['img_path'], 'Image')
        seg_map = info.get('seg_map_path')
        if seg_map is not None:
            if not osp.isfile(seg_map):
                raise InputCheckError(
                    f'Annotation {seg_map!r} for image {info["img_path"]!r} is missing. Every '
                    'image needs a label map with the same name (seg_map_suffix) under the '
                    'annotation folder: add it, or remove the image.')
            ann_size = image_size(seg_map, 'Annotation')
            if ann_size != img_size:
                raise InputCheckError(
                    f'Annotation {seg_map!r} is {ann_size[0]}x{ann_size[1]} (HxW) but its image '
                    f'{info["img_path"]!r} is {img_size[0]}x{img_size[1]}: a label map must '
                    'have its image\'s size. Regenerate or fix the annotation (or the image).')
        sizes.append(img_size)
    return sizes


def _largest_resize(size: Tuple[int, int], transform) -> Tuple[int, int]:
    """The largest (h, w) a ``Resize``/``RandomResize`` transform can make of an image ``size``."""
    name = type(transform).__name__
    if name == 'RandomResize':
        scale, ratios = transform.scale, transform.ratio_range
        keep_ratio = transform.resize_cfg.get('keep_ratio', False)
        if ratios is not None:
            scale = (scale[0] * max(ratios), scale[1] * max(ratios))
        else:  # a range of scales: the upper bound of each side
            scale = tuple(max(s[i] for s in scale) for i in range(2))
    else:
        scale, keep_ratio = transform.scale, transform.keep_ratio
        if scale is None:  # scale_factor
            factor = transform.scale_factor
            factor = factor if isinstance(factor, tuple) else (factor, factor)
            return int(size[0] * factor[1] + 0.5), int(size[1] * factor[0] + 0.5)
    width, height = scale  # mmcv scales are (w, h)
    if not keep_ratio:
        return int(height), int(width)
    # As mmcv.rescale_size: fit the long side in max(scale) and the short one in min(scale).
    factor = min(max(scale) / max(size), min(scale) / min(size))
    return int(size[0] * factor + 0.5), int(size[1] * factor + 0.5)


def check_crop_size(data_list: Sequence[dict], sizes: Sequence[Tuple[int, int]],
                    transforms: Sequence) -> None:
    """Raises if an image cannot fill the training crop even at the pipeline's largest resize.

    mmseg would pad such crops silently, training mostly on padding. Resizes before the
    ``RandomCrop`` are followed at their largest scale; other transforms are assumed to keep
    the size.

    Args:
        data_list (Sequence[dict]): mmseg data infos (``img_path``).
        sizes (Sequence[tuple[int, int]]): (height, width) of each image.
        transforms (Sequence): The dataset's built pipeline transforms.
    """
    resizes = []
    for transform in transforms:
        name = type(transform).__name__
        if name in ('Resize', 'RandomResize'):
            resizes.append(transform)
        elif name == 'RandomCrop':
            crop = tuple(transform.crop_size)
            break
    else:
        return
    for info, size in zip(data_list, sizes):
        largest = size
        for resize in resizes:
            largest = _largest_resize(largest, resize)
        if largest[0] < crop[0] or largest[1] < crop[1]:
            raise InputCheckError(
                f'Image {info["img_path"]!r} is {size[0]}x{size[1]} (HxW), at most '
                f'{largest[0]}x{largest[1]} after the train pipeline\'s resizing, smaller than '
                f'RandomCrop crop_size {crop[0]}x{crop[1]}: lower crop_size (and the model\'s '
                'data_preprocessor size) or resize images up (RandomResize scale) first.')


def _head_num_classes(model_cfg: dict) -> List[Tuple[str, int]]:
    heads = [('decode_head', model_cfg.get('decode_head'))]
    aux = model_cfg.get('auxiliary_head')
    aux = aux if isinstance(aux, (list, tuple)) else [aux]
    heads += [(f'auxiliary_head[{i}]' if len(aux) > 1 else 'auxiliary_head', h)
              for i, h in enumerate(aux)]
    return [(name, head['num_classes']) for name, head in heads
            if isinstance(head, dict) and 'num_classes' in head]


def check_num_classes(model_cfg: dict, classes: Sequence[str],
                      checkpoint: Optional[str] = None) -> None:
    """Raises if a head's ``num_classes`` differs from the dataset's or the checkpoint's.

    Args:
        model_cfg (dict): The segmentor config.
        classes (Sequence[str]): The dataset's class names.
        checkpoint (str, optional): A full-model checkpoint to be loaded (``load_from``).
    """
    heads = _head_num_classes(model_cfg)
    for name, num in heads:
        if num != len(classes):
            raise InputCheckError(
                f'model.{name}.num_classes is {num} but the dataset has {len(classes)} classes '
                f'({", ".join(classes[:5])}{", ..." if len(classes) > 5 else ""}): set '
                f'--cfg-options model.{name}.num_classes={len(classes)}.')
    if checkpoint is None or not heads or not osp.isfile(checkpoint):
        return
    from ..checkpoint import load_checkpoint
    # Memory-mapped: the head's shape without reading the tensors (the Runner reads them).
    state = load_checkpoint(checkpoint, mmap=True)
    state = state.get('state_dict', state)
    weight = state.get('decode_head.conv_seg.weight')
    if weight is not None and weight.shape[0] != heads[0][1]:
        raise InputCheckError(
            f'Checkpoint {checkpoint!r} has a {weight.shape[0]}-class decode head but '
            f'model.decode_head.num_classes is {heads[0][1]}. To fine-tune on these '
            f'{heads[0][1]} classes, load only its backbone (model.backbone.init_cfg='
            "dict(type='Pretrained', checkpoint=..., prefix='backbone.')) instead of load_from; "
            'to evaluate or resume it, use a dataset with its classes.')


def is_rank_zero() -> bool:
    """True in the first process of a distributed job, or without one.

    Reads mmengine's process group when there is one, else the launchers' environment
    (``tools/train.py`` checks before the Runner initialises the group).
    """
    from mmengine.dist import get_rank, is_distributed
    if is_distributed():
        return get_rank() == 0
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))) == 0


def sample_evenly(items: Sequence, limit: int) -> list:
    """At most ``limit`` of ``items``, spread evenly from the first to the last."""
    if len(items) <= limit:
        return list(items)
    if limit == 1:
        return [items[0]]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def check_data_list(data_list: Sequence[dict], transforms: Sequence,
                    limit: int = MAX_CHECKED_IMAGES) -> None:
    """Runs the data checks (annotations, crop size) on a sample of a dataset's infos.

    Args:
        data_list (Sequence[dict]): mmseg data infos (``img_path``, ``seg_map_path``).
        transforms (Sequence): The dataset's built pipeline transforms.
        limit (int): At most this many infos are checked (:func:`sample_evenly`); on
            ranks other than 0 none.
    """
    if not is_rank_zero():
        return
    sample = sample_evenly(data_list, limit)
    check_crop_size(sample, check_annotations(sample), transforms)


def validate_config(cfg: Config, loaders: Sequence[str] = _DATALOADERS) -> None:
    """Checks data roots, annotations, crop size and class counts of an mmseg config.

    Builds the datasets of ``loaders`` (without the Runner, so nothing is written), then
    checks the heads against the first one's classes and against ``load_from``. Rank 0 only:
    the other ranks return at once.

    Args:
        cfg (Config): A full mmseg config (``default_scope='mmseg'``).
        loaders (Sequence[str]): Dataloader fields to check (``tools/test.py``: the test one).
    """
    if not is_rank_zero():
        return
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    classes = None
    for key in loaders:
        loader = cfg.get(key)
        if not loader:
            continue
        dataset_cfg = loader['dataset']
        check_data_root(dataset_cfg, f'{key}.dataset')
        dataset = DATASETS.build(_plain(dataset_cfg))
        # Datasets that check themselves when built (ours) need not be checked twice, and
        # wrappers (ConcatDataset, ...) have no pipeline of their own.
        if not getattr(dataset, 'checks_on_load', False) and hasattr(dataset, 'pipeline'):
            indices = sample_evenly(range(len(dataset)), MAX_CHECKED_IMAGES)
            check_data_list([dataset.get_data_info(i) for i in indices],
                            dataset.pipeline.transforms)
        classes = classes or dataset.metainfo.get('classes')
    if classes is not None and cfg.get('model'):
        check_num_classes(cfg.model, classes, cfg.get('load_from'))


def _plain(dataset_cfg: dict) -> dict:
    """A copy of a dataset config as a plain dict (``build`` mutates nothing then)."""
    return ConfigDict(dataset_cfg).to_dict()
