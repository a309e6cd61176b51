"""Procedural drawing shared by the synthetic segmentation and classification datasets.

A scene is a smoothly shaded background with patterned objects pasted on it. The class of an
object is its *shape* (a disc, a ring, a square, a triangle, a cross, or a handwritten digit
from scikit-learn's bundled ``load_digits``); its colours and its pattern are drawn at random
and independently of the class, and colours come from the same distribution as the
background's. So colour says nothing about the label: a model has to look at local structure
(texture, edges, outline), which is what the locality of LocAtViT is meant to help with.

Everything here is a pure function of a ``numpy.random.Generator``, so a seed fixes every pixel.
"""
import functools
from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np

#: Object classes, in alphabetical order so that a folder scan (mmpretrain's ``CustomDataset``
#: without annotation file sorts class folders by name) gives the same indices.
SHAPES: Tuple[str, ...] = ('cross', 'digit', 'disc', 'ring', 'square', 'triangle')


@functools.lru_cache(maxsize=1)
def _digit_glyphs() -> np.ndarray:
    """scikit-learn's 1797 handwritten 8x8 digits as float32 (N, 8, 8) in [0, 1] (no download)."""
    from sklearn.datasets import load_digits
    return (load_digits().images / 16.0).astype(np.float32)


def _grid(size: int, center: Tuple[float, float], angle: float) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (size, size) each, relative to ``center`` and rotated by ``angle``."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    ys, xs = ys - center[0], xs - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * ys - sin * xs, sin * ys + cos * xs


def shape_mask(rng: np.random.Generator, shape: str, size: int, center: Tuple[float, float],
               radius: float) -> np.ndarray:
    """Boolean mask (size, size) of one randomly rotated ``shape`` about ``radius`` pixels across.

    Args:
        rng (Generator): Source of the rotation, ring width, bar width and digit glyph.
        shape (str): One of ``SHAPES``.
        size (int): Side of the (square) canvas.
        center (tuple[float, float]): (row, column) of the shape's centre.
        radius (float): Half the shape's extent, in pixels.
    """
    y, x = _grid(size, center, rng.uniform(0, 2 * np.pi))
    if shape == 'disc':
        return y**2 + x**2 <= radius**2
    if shape == 'ring':
        dist = np.sqrt(y**2 + x**2)
        return (dist <= radius) & (dist >= radius * rng.uniform(0.45, 0.6))
    if shape == 'square':
        half = radius / np.sqrt(2)  # same circumscribed circle as the other shapes
        return (np.abs(y) <= half) & (np.abs(x) <= half)
    if shape == 'triangle':
        # Equilateral triangle inscribed in the circle of ``radius``: three half-planes.
        inside = np.ones((size, size), dtype=bool)
        for k in range(3):
            theta = 2 * np.pi * k / 3
            inside &= (np.cos(theta) * y + np.sin(theta) * x) <= radius / 2
        return inside
    if shape == 'cross':
        bar = radius * rng.uniform(0.25, 0.35)
        return ((np.abs(y) <= radius) & (np.abs(x) <= bar)) | \
            ((np.abs(x) <= radius) & (np.abs(y) <= bar))
    if shape == 'digit':
        glyphs = _digit_glyphs()
        glyph = glyphs[rng.integers(len(glyphs))]
        # Map the canvas back into the 8x8 glyph (the glyph's 8 pixels span 2 * radius).
        scale = 8.0 / (2 * radius)
        gy = (y * scale + 3.5).astype(np.float32)
        gx = (x * scale + 3.5).astype(np.float32)
        value = cv2.remap(glyph, gx, gy, interpolation=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return value > 0.4
    raise ValueError(f'Unknown shape {shape!r}: choose from {SHAPES}')


def _two_colours(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Two random RGB colours at least a little apart, so that a texture stays visible."""
    first = rng.uniform(0, 255, 3)
    second = rng.uniform(0, 255, 3)
    while np.abs(first - second).max() < 60:
        second = rng.uniform(0, 255, 3)
    return first, second


#: Texture families: patterns fill objects, smooth blotches the background.
PATTERNS: Tuple[str, ...] = ('stripes', 'checker', 'dots')
BACKGROUNDS: Tuple[str, ...] = ('blotches', )
#: How objects are filled. ``'patterned'``: with one of ``PATTERNS``, on a background of the
#: same colours, so an outline is a change of texture (a hard cue: a small transformer trained
#: from scratch on CPU does not pick it up in minutes). ``'flat'``: one light colour (each
#: channel in the upper half) on a background at half brightness, so an outline is a
#: brightness edge of one sign that a linear patch embedding detects from the start. Either
#: way every class gets the same colours: the class is in the outline only.
FILLS: Tuple[str, ...] = ('patterned', 'flat')
#: Smallest largest-channel difference between a flat object's colour and the mean colour
#: under it (background, or an object it occludes), so that every flat object is visible.
FLAT_CONTRAST = 60.0


def texture(rng: np.random.Generator, size: int, kinds: Tuple[str, ...]) -> np.ndarray:
    """A random texture (size, size, 3) float32 in [0, 255] of one of ``kinds``.

    ``'stripes'``, ``'checker'`` and ``'dots'`` are rotated patterns of random period,
    ``'blotches'`` smooth random shading; each mixes two random colours. Objects and background
    draw their colours from the same distribution, so colour does not tell them apart: the
    texture's local structure and the outline do.
    """
    kind = kinds[rng.integers(len(kinds))]
    y, x = _grid(size, (0.0, 0.0), rng.uniform(0, np.pi))
    period = rng.uniform(4.0, 9.0)
    if kind == 'stripes':
        weight = np.sin(2 * np.pi * y / period) > 0
    elif kind == 'checker':
        weight = (np.floor(y / period) + np.floor(x / period)) % 2 == 0
    elif kind == 'dots':
        weight = np.sin(2 * np.pi * y / period) * np.sin(2 * np.pi * x / period) > 0.3
    elif kind == 'blotches':
        coarse = rng.uniform(0, 1, (4, 4)).astype(np.float32)
        weight = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        raise ValueError(f'Unknown texture {kind!r}')
    weight = np.clip(weight.astype(np.float32), 0, 1)[..., None]
    first, second = _two_colours(rng)
    return weight * first + (1 - weight) * second


def _flat_fill(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One light colour (3,), each channel in [128, 255), redrawn until it differs from the
    mean colour of ``image`` under ``mask`` by at least ``FLAT_CONTRAST`` in some channel."""
    under = image[mask].mean(0) if mask.any() else image.reshape(-1, 3).mean(0)
    colour = rng.uniform(128, 255, 3)
    while np.abs(colour - under).max() < FLAT_CONTRAST:
        colour = rng.uniform(128, 255, 3)
    return colour


def draw_scene(rng: np.random.Generator, size: int, shapes: List[int],
               radius_range: Union[Tuple[float, float], Sequence[Tuple[float, float]]],
               fill: str = 'patterned') -> Tuple[np.ndarray, np.ndarray]:
    """Draws objects of the given classes, in order (later ones occlude earlier ones).

    Args:
        rng (Generator): Source of every random choice.
        size (int): Side of the square image.
        shapes (list[int]): Indices into ``SHAPES`` of the objects to draw.
        radius_range (tuple[float, float] | list[tuple[float, float]]): Object radius range,
            as fractions of ``size``: one for all objects, or one per object.
        fill (str): One of ``FILLS``.

    Returns:
        tuple: ``image`` (size, size, 3) uint8 RGB, and ``label`` (size, size) uint8 with 0 for
        background and ``1 + shape index`` where an object is visible.
    """
    if fill not in FILLS:
        raise ValueError(f'Unknown fill {fill!r}: choose from {FILLS}')
    ranges = [radius_range] * len(shapes) if np.ndim(radius_range) == 1 else list(radius_range)
    if len(ranges) != len(shapes):
        raise ValueError(f'{len(ranges)} radius ranges for {len(shapes)} shapes')
    image = texture(rng, size, BACKGROUNDS)
    if fill == 'flat':
        image *= 0.5
    label = np.zeros((size, size), dtype=np.uint8)
    for shape, (low, high) in zip(shapes, ranges):
        radius = rng.uniform(low, high) * size
        center = tuple(rng.uniform(radius * 0.6, size - radius * 0.6, 2))
        mask = shape_mask(rng, SHAPES[shape], size, center, radius)
        if fill == 'patterned':
            image[mask] = texture(rng, size, PATTERNS)[mask]
        else:
            image[mask] = _flat_fill(rng, image, mask)
        label[mask] = shape + 1
    # Sensor noise, so that flat colours are not exact either.
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), label
