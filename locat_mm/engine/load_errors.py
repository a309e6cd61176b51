"""Errors of a data-loading transform that name the file.

A truncated or damaged image or label outside the sample the start-up checks decode
(``locat_mm.seg.checks``) fails when the pipeline loads it, with the decoder's bare message
(PIL's ``OSError: image file is truncated``, no path). :class:`NameFileOnError` wraps a loading
transform and raises :class:`DataFileError` naming the file instead; the launchers wrap every
``Load*`` transform of their dataloaders (``locat_mm.launch.name_files_in_load_errors``).
"""
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS

# The keys of mmcv/mmseg/mmpretrain data infos that hold the files a loading transform reads.
FILE_KEYS = ('img_path', 'seg_map_path')


class DataFileError(OSError):
    """A data file that cannot be loaded; the message names it."""


@TRANSFORMS.register_module()
class NameFileOnError(BaseTransform):
    """Runs ``transform``; an error it raises is raised again naming the files it read.

    Args:
        transform (dict): The loading transform's config (e.g. ``dict(type='LoadAnnotations')``),
            built in the default scope's registry.
    """

    def __init__(self, transform: dict) -> None:
        self.inner = TRANSFORMS.build(transform)

    def transform(self, results: dict) -> dict:
        try:
            return self.inner(results)
        except Exception as err:
            files = ', '.join(f'{results[key]!r}' for key in FILE_KEYS if results.get(key))
            raise DataFileError(
                f'{type(self.inner).__name__} failed on {files or "a sample without a path"}'
                f' ({type(err).__name__}: {err}): the file is probably truncated or damaged. '
                'Re-create or re-download it, or remove it from the dataset.') from err

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.inner!r})'
