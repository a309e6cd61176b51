"""GAug: the module that predicts LocAtViT's per-query Gaussian bias (SPEC section 1)."""
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops.gaussian import DIST_FLOOR, GaussianTerms, axis_distance, gaug_eps


class GaussianAugmentation(nn.Module):
    """Predicts each query's Gaussian locality bias from the query itself.

    Holds the two maps of one attention layer, shared by its heads: ``log_var`` (c -> 2, one
    log-variance per grid axis, rows then columns) and ``log_alpha`` (c -> 1, the amplitude
    before softplus). The bias between patch query ``i`` and patch key ``j`` is separable::

        B_ij = a_i * exp(Dy_ij / (vy_i + eps)) * exp(Dx_ij / (vx_i + eps))

    so the module returns the two per-axis factors (``row_factor`` carries ``a_i``) and
    :meth:`dense_bias` multiplies them out for callers that want the N x N matrix.

    Args:
        head_dim (int): Width ``c`` of one attention head.
        base_grid (tuple[int, int]): Patch grid ``(H0, W0)`` the model was built for.
    """

    def __init__(self, head_dim: int, base_grid: Tuple[int, int]) -> None:
        super().__init__()
        self.log_var = nn.Linear(head_dim, 2)
        self.log_alpha = nn.Linear(head_dim, 1)
        self.base_grid = tuple(base_grid)
        var_max = max(self.base_grid)**2
        self.var_max = float(var_max)
        # Puts v = 1 at s = 0, so an untrained layer starts with a one-patch Gaussian.
        self.var_shift = math.log(var_max - 1) if var_max > 2 else 0.0
        self.eps = gaug_eps(self.base_grid)
        self.dist_floor = max(-0.5 * (max(self.base_grid) - 1)**2, DIST_FLOOR)

    def variance_amplitude(self, q: Tensor,
                           grid: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """Per-query variances and amplitudes, in float32.

        Args:
            q (Tensor): Patch queries, (B, heads, N, c), N = H * W.
            grid (tuple[int, int]): Current patch grid (H, W).

        Returns:
            tuple[Tensor, Tensor]: variance (B, heads, N, 2) (rows, columns) and
            amplitude (B, heads, N, 1).
        """
        # Mixed precision: the maps may run in half precision, the rest is kept in float32.
        # Both maps in one matmul: q is read once, forward and backward.
        weight = torch.cat([self.log_var.weight, self.log_alpha.weight])
        bias = torch.cat([self.log_var.bias, self.log_alpha.bias])
        st = F.linear(q, weight, bias).float()
        s, t = st[..., :2], st[..., 2:]
        var = self.var_max * torch.sigmoid(s - self.var_shift)
        if tuple(grid) != self.base_grid:
            var = var * (min(grid) / min(self.base_grid))
        return var, F.softplus(t)

    def terms(self, q: Tensor, grid: Tuple[int, int], num_prefix: int = 0) -> 'GaussianTerms':
        """The per-query quantities that define the bias, without expanding it.

        Args:
            q (Tensor): Queries, (B, heads, P + N, c), patches (N = H * W) in row-major order
                after ``num_prefix`` prefix tokens, which get no terms. Taking the whole of a
                contiguous q lets the maps read it in place.
            grid (tuple[int, int]): Current patch grid (H, W).
            num_prefix (int): P.
        """
        H, W = grid
        var, amp = self.variance_amplitude(q, grid)
        var, amp = var[..., num_prefix:, :], amp[..., num_prefix:, :]
        # Each query's own row/column of the per-axis distance table.
        row_dist = axis_distance(H, self.dist_floor, q.device).repeat_interleave(W, dim=0)
        col_dist = axis_distance(W, self.dist_floor, q.device).repeat(H, 1)
        return GaussianTerms(1.0 / (var + self.eps), amp, row_dist, col_dist)

    def forward(self, q: Tensor, grid: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """Separable factors of the bias (see :meth:`GaussianTerms.factors`), float32.

        Args:
            q (Tensor): Patch queries, (B, heads, N, c) with N = H * W in row-major order.
            grid (tuple[int, int]): Current patch grid (H, W).

        Returns:
            tuple[Tensor, Tensor]: ``row_factor`` (B, heads, N, H) and ``col_factor``
            (B, heads, N, W).
        """
        return self.terms(q, grid).factors()

    @staticmethod
    def combine(row_factor: Tensor, col_factor: Tensor) -> Tensor:
        """Multiplies the factors out: (B, heads, N, H) x (B, heads, N, W) -> (B, heads, N, N)."""
        bias = row_factor.unsqueeze(-1) * col_factor.unsqueeze(-2)
        return bias.flatten(-2)

    def dense_bias(self, q: Tensor, grid: Tuple[int, int]) -> Tensor:
        """The (B, heads, N, N) patch-to-patch bias, float32, by the formula as written.

        Builds the (N, N, 2) distance tensor and never uses separability: the reference
        formulation, kept as the oracle of :meth:`forward` and as the fallback path.
        """
        H, W = grid
        var, amp = self.variance_amplitude(q, grid)
        ys, xs = torch.meshgrid(
            torch.arange(H, device=q.device, dtype=torch.float32),
            torch.arange(W, device=q.device, dtype=torch.float32),
            indexing='ij')
        pos = torch.stack([ys.flatten(), xs.flatten()], dim=-1)  # (N, 2)
        dist = (-0.5 * (pos[:, None, :] - pos[None, :, :])**2).clamp_min(self.dist_floor)
        expo = (dist / (var.unsqueeze(-2) + self.eps)).sum(-1)  # (B, heads, N, N)
        return amp * torch.exp(expo)
