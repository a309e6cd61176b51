"""An independent bicubic resize (numpy, float64) to check position-embedding resizing.

Written from the kernels' definitions, not from the code under test:

- plain: Keys' cubic convolution with a = -0.75 on half-pixel centres
  (``src = (i + 0.5) * in / out - 0.5``), edge samples repeated; what
  ``F.interpolate(mode='bicubic', align_corners=False)`` computes;
- antialiased: the cubic kernel with a = -0.5 stretched by the downscale factor, taps inside
  the image only, weights normalised to sum 1 (PIL's resampling, which timm's
  ``resample_abs_pos_embed`` gets from ``antialias=True``).
"""
import math

import numpy as np


def cubic(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def resize_matrix(size_in: int, size_out: int, antialias: bool) -> np.ndarray:
    """(size_out, size_in) matrix M with ``out = M @ in`` along one axis."""
    scale = size_in / size_out
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        if antialias:
            stretch = max(scale, 1.0)
            centre = (i + 0.5) * scale
            lo = max(int(centre - 2 * stretch + 0.5), 0)
            hi = min(int(centre + 2 * stretch + 0.5), size_in)
            taps = np.arange(lo, hi)
            weights = cubic((taps - centre + 0.5) / stretch, a=-0.5)
            matrix[i, taps] = weights / weights.sum()
        else:
            src = (i + 0.5) * scale - 0.5
            base = math.floor(src)
            for tap in range(base - 1, base + 3):
                matrix[i, min(max(tap, 0), size_in - 1)] += cubic(np.array(src - tap), a=-0.75)
    return matrix


def bicubic_resize(grid: np.ndarray, size_out: tuple, antialias: bool) -> np.ndarray:
    """(C, H, W) -> (C, H', W'), separable: rows, then columns."""
    rows = resize_matrix(grid.shape[1], size_out[0], antialias)
    cols = resize_matrix(grid.shape[2], size_out[1], antialias)
    return np.einsum('ih,chw,jw->cij', rows, grid.astype(np.float64), cols)


def resize_pos_embed_oracle(pos_embed, src: tuple, dst: tuple, num_prefix: int = 1,
                            antialias: bool = True) -> np.ndarray:
    """(1, P + H*W, C) tensor or array -> (1, P + H'*W', C) float64 array."""
    pos_embed = np.asarray(pos_embed, dtype=np.float64)
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[0, num_prefix:]
    grid = grid.reshape(*src, -1).transpose(2, 0, 1)
    resized = bicubic_resize(grid, dst, antialias).transpose(1, 2, 0).reshape(1, -1, grid.shape[0])
    return np.concatenate([prefix, resized], axis=1)
