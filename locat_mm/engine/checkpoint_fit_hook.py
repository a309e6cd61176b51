"""Refuses a ``load_from`` or resume checkpoint that does not fit the model.

mmengine's Runner loads both leniently: missing and unexpected keys are logged and the run
goes on (a segmentor tested with a classifier's checkpoint reports an mIoU of random weights).
:class:`CheckpointFitHook` compares the checkpoint with the model when the Runner has read it,
before any weight is copied, and raises :class:`~locat_mm.checkpoint.CheckpointMismatchError`
naming what does not fit (by module) and what the file is. ``tools/train.py`` and
``tools/test.py`` add it; ``--allow-partial`` (``allow_partial=True``) makes it a warning.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..checkpoint import check_model_fit, describe_locat_contents, state_dict_of


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Checks that the checkpoint the Runner loads (``load_from``, resume) fits its model.

    Args:
        allow_partial (bool, optional): Warn instead of raising. Default: the environment
            variable ``LOCAT_MM_ALLOW_PARTIAL`` (what ``--allow-partial`` sets).
    """
    priority = 'VERY_HIGH'

    def __init__(self, allow_partial: Optional[bool] = None) -> None:
        self.allow_partial = allow_partial

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # The Runner keeps the path it loads or resumes from in `_load_from` (None when it
        # resumes from the latest checkpoint of the work dir).
        source = (getattr(runner, '_load_from', None)
                  or f'the latest checkpoint in {runner.work_dir}')
        check_model_fit(
            model, state_dict_of(checkpoint), source, allow_partial=self.allow_partial,
            describe=describe_locat_contents,
            what_to_do='load_from/CHECKPOINT must be a checkpoint of this config\'s model; to '
            'start only the backbone from another model, set model.backbone.init_cfg='
            "dict(type='Pretrained', checkpoint=...) instead.")
