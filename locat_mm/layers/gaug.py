"""GAug: the module that predicts LocAtViT's per-query Gaussian bias (SPEC section 1)."""
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops.dense import gaussian_bias
from ..ops.gaussian import dist_floor, gaug_eps


def _min_side(grid: Tuple[int, int]):
    """``min(H, W)`` without a branch: ints, symbolic sizes, or the 0-d size tensors that
    ``torch.jit.trace`` records (then the trace stays valid at other sizes)."""
    H, W = grid
    if isinstance(H, Tensor):
        return torch.minimum(H, W)
    return torch.sym_min(H, W)


class GaussianAugmentation(nn.Module):
    """Predicts each query's Gaussian locality bias from the query itself.

    Holds the two maps of one attention layer, shared by its heads: ``log_var`` (c -> 2, one
    log-variance per grid axis, rows then columns) and ``log_alpha`` (c -> 1, the amplitude
    before softplus). Its forward turns queries into per-axis variances and amplitudes, which
    the attention operator (``locat_mm.ops.gaug_attention``) turns into the bias::

        B_ij = a_i * exp(Dy_ij / (vy_i + eps)) * exp(Dx_ij / (vx_i + eps))

    The attention layer calls this module, so forward hooks on it (``GAugStatsHook``) see the
    variances and amplitudes the layer uses. :meth:`dense_bias` writes out the (B, heads, N, N)
    bias, for callers that add it to other logits (window attention, visualisation).

    Args:
        head_dim (int): Width ``c`` of one attention head.
        base_grid (tuple[int, int]): Patch grid ``(H0, W0)`` the model was built for.
    """

    def __init__(self, head_dim: int, base_grid: Tuple[int, int]) -> None:
        super().__init__()
        self.log_var = nn.Linear(head_dim, 2)
        self.log_alpha = nn.Linear(head_dim, 1)
        self.set_base_grid(base_grid)

    def set_base_grid(self, base_grid: Tuple[int, int]) -> None:
        """Sets the grid ``(H0, W0)`` the maps were trained on, and the constants that follow
        from it (K, the variance shift, eps, the distance floor): loading weights trained on
        another grid than the one the model was built for calls this."""
        self.base_grid = tuple(int(side) for side in base_grid)
        var_max = max(self.base_grid)**2
        self.var_max = float(var_max)
        # Puts v = 1 at s = 0, so an untrained layer starts with a one-patch Gaussian.
        self.var_shift = math.log(var_max - 1) if var_max > 2 else 0.0
        self.eps = gaug_eps(self.base_grid)
        self.dist_floor = dist_floor(self.base_grid)

    def reset_parameters(self) -> None:
        """The authors' start (timm's initialisation of every Linear): trunc-normal(0.02)
        weights and zero biases, so a query near 0 gets variance 1 and amplitude softplus(0)."""
        for linear in (self.log_var, self.log_alpha):
            nn.init.trunc_normal_(linear.weight, std=.02)
            nn.init.zeros_(linear.bias)

    def forward(self, q: Tensor, grid: Tuple[int, int],
                num_prefix: int = 0) -> Tuple[Tensor, Tensor]:
        """Per-query variances and amplitudes of the patch queries, in float32.

        Args:
            q (Tensor): Queries, (B, heads, P + N, c), patches (N = H * W) in row-major order
                after ``num_prefix`` prefix tokens, which get none. Taking the whole of a
                contiguous q lets the maps read it in place.
            grid (tuple[int, int]): Current patch grid (H, W).
            num_prefix (int): P.

        Returns:
            tuple[Tensor, Tensor]: variance (B, heads, N, 2) (rows, columns) and
            amplitude (B, heads, N, 1).
        """
        # Both maps in one product with the output channels first, (3, B * heads * L): q is
        # read once, forward and backward, and the elementwise ops below run on contiguous
        # rows. Mixed precision: the maps may run in half precision, the rest in float32.
        weight = torch.cat([self.log_var.weight, self.log_alpha.weight])
        bias = torch.cat([self.log_var.bias, self.log_alpha.bias])
        st = torch.addmm(bias[:, None], weight, q.reshape(-1, q.shape[-1]).t())
        st = st.float().view(3, *q.shape[:-1])[..., num_prefix:]
        # Scaled by min(H, W) / min(H0, W0) off the base grid (SPEC 1); the factor is exactly 1
        # on it, so no branch on the (possibly symbolic) grid is needed.
        scale = self.var_max * (_min_side(grid) / min(self.base_grid))
        var = torch.sigmoid(st[:2] - self.var_shift) * scale
        return var.permute(1, 2, 3, 0), F.softplus(st[2:]).permute(1, 2, 3, 0)

    def dense_bias(self, q: Tensor, grid: Tuple[int, int], num_prefix: int = 0) -> Tensor:
        """The (B, heads, N, N) patch-to-patch bias, float32, by the formula as written.

        Args: as :meth:`forward`.
        """
        var, amp = self(q, grid, num_prefix)
        return gaussian_bias(var, amp, grid, self.eps, self.dist_floor)
