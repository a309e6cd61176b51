"""Prediction pictures a person can read: image, ground truth and prediction side by side.

The demo's images are 64 px; drawn at that size (as mmseg's visualizer does) a patch of 8 px
is a few screen pixels. Here every panel is upscaled by a whole factor with nearest-neighbour
sampling, so each label pixel stays one flat block of its class colour, and a legend names
the colours. numpy and OpenCV only.
"""
from typing import Optional, Sequence

import cv2
import numpy as np

#: Colour of ignored pixels (label 255) in the ground truth.
IGNORE_COLOUR = (128, 128, 128)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT = (255, 255, 255)
# Dark grey ground, so that a black class (the synthetic sets' background) shows its extent.
_GROUND = 48
_GAP = 8  # pixels between panels and around the picture


def _text_height(scale: float) -> int:
    return cv2.getTextSize('Ag', _FONT, scale, 1)[0][1] + 8


def colourise(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB; 255 (ignored) is grey."""
    table = np.zeros((256, 3), np.uint8)
    table[:len(palette)] = np.asarray(palette, np.uint8)
    table[255] = IGNORE_COLOUR
    return table[label.astype(np.uint8)]


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by a whole factor: each pixel becomes a factor x factor
    block."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _legend(classes: Sequence[str], palette: Sequence[Sequence[int]], width: int,
            font_scale: float) -> np.ndarray:
    """Rows of (swatch, class name) that fit ``width``; RGB uint8."""
    line = _text_height(font_scale)
    swatch = line - 6
    items = [(name, cv2.getTextSize(name, _FONT, font_scale, 1)[0][0] + swatch + 3 * _GAP)
             for name in classes]
    rows, row, used = [], [], 0
    for index, (name, item_width) in enumerate(items):
        if row and used + item_width > width:
            rows.append(row)
            row, used = [], 0
        row.append((index, name))
        used += item_width
    rows.append(row)
    legend = np.full((len(rows) * line + _GAP, width, 3), _GROUND, np.uint8)
    for r, entries in enumerate(rows):
        x, top = _GAP, r * line + _GAP // 2
        for index, name in entries:
            colour = tuple(int(c) for c in palette[index])
            cv2.rectangle(legend, (x, top + 3), (x + swatch, top + 3 + swatch), colour, -1)
            cv2.rectangle(legend, (x, top + 3), (x + swatch, top + 3 + swatch), _TEXT, 1)
            x += swatch + _GAP
            cv2.putText(legend, name, (x, top + line - 6), _FONT, font_scale, _TEXT, 1,
                        cv2.LINE_AA)
            x += cv2.getTextSize(name, _FONT, font_scale, 1)[0][0] + 2 * _GAP
    return legend


def prediction_picture(image: np.ndarray, gt: np.ndarray, pred: np.ndarray,
                       classes: Sequence[str], palette: Sequence[Sequence[int]],
                       factor: Optional[int] = None, min_side: int = 256) -> np.ndarray:
    """The image, its ground truth and the prediction side by side, titled, with a legend.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        gt (np.ndarray): (H, W) class indices (255: ignored).
        pred (np.ndarray): (H, W) class indices.
        classes (Sequence[str]): Class names, in index order.
        palette (Sequence[Sequence[int]]): RGB colour of each class.
        factor (int, optional): Upscaling factor; default the smallest that makes the shorter
            side at least ``min_side`` pixels.
        min_side (int): See ``factor``.

    Returns:
        np.ndarray: RGB uint8, (title + factor * H + legend, 3 * factor * W + gaps, 3).
    """
    height, width = gt.shape
    if image.shape[:2] != gt.shape or pred.shape != gt.shape:
        raise ValueError(f'image {image.shape[:2]}, ground truth {gt.shape} and prediction '
                         f'{pred.shape} must have the same height and width')
    factor = factor or max(1, -(-min_side // min(height, width)))
    panels = [upscale(image, factor), upscale(colourise(gt, palette), factor),
              upscale(colourise(pred, palette), factor)]
    panel_h, panel_w = panels[0].shape[:2]
    font_scale = max(0.4, panel_w / 500)
    title_h = _text_height(font_scale)
    total_w = 3 * panel_w + 4 * _GAP
    top = np.full((title_h + panel_h + _GAP, total_w, 3), _GROUND, np.uint8)
    for i, (panel, title) in enumerate(zip(panels, ('image', 'ground truth', 'prediction'))):
        x = _GAP + i * (panel_w + _GAP)
        top[title_h:title_h + panel_h, x:x + panel_w] = panel
        cv2.putText(top, title, (x, title_h - 6), _FONT, font_scale, _TEXT, 1, cv2.LINE_AA)
    return np.concatenate([top, _legend(classes, palette, total_w, font_scale)], axis=0)
