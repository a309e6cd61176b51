"""Synthetic datasets the project builds itself (no download).

Importable without MMSegmentation or MMPretrain; the mmseg dataset class that reads the
segmentation set is ``locat_mm.seg.datasets.SyntheticShapesDataset``.
"""
from .drawing import BACKGROUNDS, FILLS, PATTERNS, SHAPES, draw_scene, shape_mask, texture
from .synthetic import (CLS_CLASSES, SEG_CLASSES, SEG_PALETTE, make_synthetic_classification,
                        make_synthetic_segmentation, synthetic_dataset_ready)

__all__ = [
    'BACKGROUNDS', 'FILLS', 'PATTERNS', 'SHAPES', 'draw_scene', 'shape_mask', 'texture', 'CLS_CLASSES',
    'SEG_CLASSES', 'SEG_PALETTE',
    'make_synthetic_classification', 'make_synthetic_segmentation', 'synthetic_dataset_ready'
]
