"""The maths of GAug's bias (SPEC section 1): eps, per-axis distances and per-query terms.

Plain torch: no OpenMMLab import, so kernels, exporters and the GPU check can use it alone.
"""
from functools import lru_cache
from typing import NamedTuple, Tuple

import torch
from torch import Tensor

# float16's largest finite value is 65504: the reference keeps exponents above -6550 and
# distance/eps^2 ratios below 32500 so that its float16 path stays finite.
DIST_FLOOR = -6550.0
_EPS_RATIO_LIMIT = 32500.0
_EXP_FLOOR = -87.0


def gaug_eps(base_grid: Tuple[int, int]) -> float:
    """The variance offset ``eps`` of SPEC section 1; depends on the model's grid only."""
    half_span = 0.5 * (max(base_grid) - 1)**2
    eps = 0.1
    while half_span / eps**2 > _EPS_RATIO_LIMIT:
        eps *= 2
    return eps


@lru_cache(maxsize=64)
def axis_distance(length: int, floor: float, device: torch.device) -> Tensor:
    """(length, length) table of ``max(-0.5 (i - j)^2, floor)`` along one grid axis."""
    pos = torch.arange(length, device=device, dtype=torch.float32)
    return (-0.5 * (pos[:, None] - pos[None, :])**2).clamp_min(floor)


def _exp_flushed(exponent: Tensor) -> Tensor:
    """``exp`` of non-positive exponents, those below float32's normal range clamped to it.

    exp(-87.3) is float32's smallest normal number: below it results are denormal, which CPUs
    compute up to a hundred times slower, and which are 0 to within 1e-38 anyway.
    """
    return torch.exp(exponent.clamp_min(_EXP_FLOOR))


class GaussianTerms(NamedTuple):
    """What GAug's bias is made of, per query; all float32.

    ``inv_var`` (B, heads, N, 2) is ``1 / (v + eps)`` per axis (rows, columns), ``amp``
    (B, heads, N, 1) the amplitude, ``row_dist`` (N, H) and ``col_dist`` (N, W) the clamped
    half squared distances from each query's row / column to every row / column.
    """
    inv_var: Tensor
    amp: Tensor
    row_dist: Tensor
    col_dist: Tensor

    def row_gaussian(self) -> Tensor:
        """``exp(Dy(y_i, y) / (vy_i + eps))``, (B, heads, N, H)."""
        return _exp_flushed(self.row_dist * self.inv_var[..., 0:1])

    def factors(self) -> Tuple[Tensor, Tensor]:
        """``row_factor[..., i, y] = a_i exp(Dy(y_i, y) / (vy_i + eps))`` (B, heads, N, H) and
        ``col_factor[..., i, x] = exp(Dx(x_i, x) / (vx_i + eps))`` (B, heads, N, W)."""
        row = self.amp * self.row_gaussian()
        col = _exp_flushed(self.col_dist * self.inv_var[..., 1:2])
        return row, col
