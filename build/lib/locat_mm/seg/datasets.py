"""The synthetic shapes dataset (``locat_mm.datasets``) as an MMSegmentation dataset."""
import os.path as osp
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..datasets import SEG_CLASSES, SEG_PALETTE
from .checks import InputCheckError, check_data_list, check_data_root


@DATASETS.register_module()
class SyntheticShapesDataset(BaseSegDataset):
    """Textured shapes on textured backgrounds, in ADE20K's layout.

    Written by ``tools/dataset_converters/make_synthetic.py seg ROOT``. Label 0 is the
    background, a real class, so ``reduce_zero_label=False`` (there is no "other" label to
    drop, unlike ADE20K's 0). When built it checks that the data root exists, that every image
    has an annotation of its size, and that the training crop fits, raising an
    ``InputCheckError`` that says what to fix.

    Args:
        img_suffix (str): Image file suffix.
        seg_map_suffix (str): Annotation file suffix.
        reduce_zero_label (bool): Kept False; see above.
        **kwargs: ``BaseSegDataset`` arguments (``data_root``, ``data_prefix``, ``pipeline``...).
    """
    METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)
    #: ``locat_mm.seg.checks.validate_config`` skips datasets that check themselves.
    checks_on_load = True

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Lists image/annotation pairs (sorted by name) after checking them."""
        prefix = {key: osp.relpath(path, self.data_root) if self.data_root else path
                  for key, path in self.data_prefix.items()}
        check_data_root(dict(data_root=self.data_root, data_prefix=prefix),
                        type(self).__name__)
        data_list = super().load_data_list()
        if not data_list:
            raise InputCheckError(
                f'No {self.img_suffix} images under {self.data_prefix["img_path"]!r}: write '
                'the dataset with tools/dataset_converters/make_synthetic.py seg ROOT.')
        check_data_list(data_list, self.pipeline.transforms)
        return data_list
