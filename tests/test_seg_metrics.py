"""ClassIoUMetric: mmseg's IoUMetric plus every class's IoU, checked against a direct count."""
import numpy as np
import pytest
import torch


def _sample(pred: np.ndarray, label: np.ndarray) -> dict:
    return dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                gt_sem_seg=dict(data=torch.from_numpy(label)[None]))


def test_per_class_iou_matches_a_direct_count():
    from locat_mm.seg.metrics import ClassIoUMetric
    classes = ('background', 'disc', 'ring', 'never')
    metric = ClassIoUMetric()
    metric.dataset_meta = dict(classes=classes)
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 3, (8, 8)) for _ in range(3)]
    labels = [rng.integers(0, 3, (8, 8)) for _ in range(3)]
    labels[0][0, :4] = 255  # ignored pixels
    metric.process({}, [_sample(p, g) for p, g in zip(preds, labels)])
    result = metric.evaluate(3)

    pred, label = np.stack(preds), np.stack(labels)
    valid = label != 255
    ious = []
    for k in range(3):
        inter = ((pred == k) & (label == k) & valid).sum()
        union = (((pred == k) & valid) | (label == k)).sum()
        ious.append(100 * inter / union)
        assert result[f'IoU.{classes[k]}'] == pytest.approx(ious[-1], abs=0.01)
    assert np.isnan(result['IoU.never'])  # neither present nor predicted
    assert result['mIoU'] == pytest.approx(np.mean(ious), abs=0.01)
    assert {'aAcc', 'mAcc'} <= set(result)


def test_other_iou_metrics_are_refused():
    from locat_mm.seg.metrics import ClassIoUMetric
    with pytest.raises(ValueError, match='mIoU'):
        ClassIoUMetric(iou_metrics=['mDice'])
