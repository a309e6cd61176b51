"""locat_mm.seg.overlay: the demo's prediction pictures, upscaled, side by side, with a legend."""
import numpy as np
import pytest

from locat_mm.datasets import SEG_CLASSES, SEG_PALETTE
from locat_mm.seg.overlay import IGNORE_COLOUR, prediction_picture


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    gt = rng.integers(0, len(SEG_CLASSES), (64, 64)).astype(np.uint8)
    gt[:4, :4] = 255
    pred = rng.integers(0, len(SEG_CLASSES), (64, 64)).astype(np.uint8)
    return image, gt, pred


def find_panels(picture: np.ndarray, image: np.ndarray, factor: int) -> list:
    """Top-left corners where the upscaled image's first block lies (searched, not assumed)."""
    block = np.repeat(np.repeat(image[:2, :2], factor, 0), factor, 1)
    hits = []
    for y in range(picture.shape[0] - block.shape[0]):
        for x in range(picture.shape[1] - block.shape[1]):
            if np.array_equal(picture[y:y + block.shape[0], x:x + block.shape[1]], block):
                hits.append((y, x))
    return hits


def test_panels_are_nearest_neighbour_blocks(sample):
    image, gt, pred = sample
    picture = prediction_picture(image, gt, pred, SEG_CLASSES, SEG_PALETTE)
    factor = 4  # the smallest that makes 64 px at least 256
    assert picture.dtype == np.uint8 and picture.shape[1] >= 3 * 64 * factor
    (top, left), = find_panels(picture, image, factor)
    width = 64 * factor
    gap = (picture.shape[1] - 3 * width) // 4
    panels = [picture[top:top + width, left + i * (width + gap):left + i * (width + gap) + width]
              for i in range(3)]
    # Every pixel of the 64 px inputs is a factor x factor block of its colour.
    palette = np.asarray(SEG_PALETTE, np.uint8)
    expected_gt = np.where((gt == 255)[..., None], np.asarray(IGNORE_COLOUR, np.uint8),
                           palette[np.minimum(gt, len(palette) - 1)])
    for panel, want in zip(panels, (image, expected_gt, palette[pred])):
        for y in range(64):
            for x in range(64):
                block = panel[y * factor:(y + 1) * factor, x * factor:(x + 1) * factor]
                assert (block == want[y, x]).all(), (y, x)


def test_legend_shows_every_class_colour(sample):
    image, gt, pred = sample
    picture = prediction_picture(image, gt, pred, SEG_CLASSES, SEG_PALETTE)
    (top, _), = find_panels(picture, image, 4)
    legend = picture[top + 64 * 4:]
    for colour in SEG_PALETTE:
        assert (legend == np.asarray(colour, np.uint8)).all(-1).sum() >= 25, colour


def test_shapes_must_agree(sample):
    image, gt, pred = sample
    with pytest.raises(ValueError, match='same height and width'):
        prediction_picture(image, gt, pred[:32], SEG_CLASSES, SEG_PALETTE)
