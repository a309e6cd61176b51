"""Segmentation metrics."""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class ClassIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` (``iou_metrics=['mIoU']``) that also returns every class's IoU.

    Next to ``aAcc``, ``mIoU`` and ``mAcc`` (as upstream, in percent) the result has
    ``IoU.<class>`` per class (percent; NaN for a class that is neither predicted nor present),
    so the per-class numbers reach the message hub, the json logs and the caller of
    ``runner.train()``/``runner.test()``, not only the printed table.
    """

    def __init__(self, iou_metrics: Sequence[str] = ('mIoU', ), **kwargs) -> None:
        if list(iou_metrics) != ['mIoU']:
            raise ValueError("ClassIoUMetric adds per-class IoU to iou_metrics=['mIoU'] only; "
                             'use mmseg IoUMetric for the other metrics.')
        super().__init__(iou_metrics=['mIoU'], **kwargs)

    def compute_metrics(self, results: List[Sequence[torch.Tensor]]) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        # Each result is (intersect, union, pred_area, label_area), per class, of one image.
        intersect = sum(r[0] for r in results).double()
        union = sum(r[1] for r in results).double()
        iou = (intersect / union).numpy() * 100  # 0 / 0 -> NaN: absent and never predicted
        for name, value in zip(self.dataset_meta['classes'], iou):
            metrics[f'IoU.{name}'] = float(np.round(value, 2))
        return metrics
