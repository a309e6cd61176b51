"""SPEC section 1 (GAug attention) written out in float64 torch, differentiable, independent of
the package's code: the oracle for the kernels' values and gradients."""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def spec_bias(s: Tensor, t: Tensor, grid: Tuple[int, int], base_grid: Tuple[int, int]) -> Tensor:
    """The bias over patch tokens: s (..., N, 2), t (..., N, 1) -> (..., N, N), N = H * W."""
    H, W = grid
    H0, W0 = base_grid
    K = max(H0, W0)**2
    b = math.log(K - 1) if K > 2 else 0.0
    v = K * torch.sigmoid(s - b)
    if (H, W) != (H0, W0):
        v = v * min(H, W) / min(H0, W0)
    a = torch.log1p(torch.exp(t))  # (..., N, 1)
    eps = 0.1
    while 0.5 * (max(H0, W0) - 1)**2 / eps**2 > 32500:
        eps *= 2
    floor = max(-0.5 * (max(H0, W0) - 1)**2, -6550)
    ys = torch.arange(H * W, dtype=s.dtype) // W
    xs = torch.arange(H * W, dtype=s.dtype) % W
    dy = (-0.5 * (ys[:, None] - ys[None, :])**2).clamp_min(floor)
    dx = (-0.5 * (xs[:, None] - xs[None, :])**2).clamp_min(floor)
    return a * torch.exp(dy / (v[..., :1] + eps) + dx / (v[..., 1:] + eps))


def spec_attention(q: Tensor, k: Tensor, v: Tensor, gaug: torch.nn.Module,
                   grid: Tuple[int, int], prefix: int) -> Tensor:
    """``softmax(q k^T / sqrt(c) + B) v`` in float64, B from ``gaug``'s two maps applied to
    the patch queries (prefix rows and columns get 0).

    Args:
        q, k, v (Tensor): (B, heads, P + H*W, c).
        gaug (GaussianAugmentation): Its ``log_var``, ``log_alpha`` weights and ``base_grid``
            are read (gradients flow to them); nothing else of it is called.
        grid (tuple[int, int]): (H, W).
        prefix (int): P.

    Returns:
        Tensor: (B, heads, P + H*W, c), float64.
    """
    q, k, v = q.double(), k.double(), v.double()
    patches = q[:, :, prefix:]
    s = F.linear(patches, gaug.log_var.weight.double(), gaug.log_var.bias.double())
    t = F.linear(patches, gaug.log_alpha.weight.double(), gaug.log_alpha.bias.double())
    bias = F.pad(spec_bias(s, t, grid, tuple(gaug.base_grid)), (prefix, 0, prefix, 0))
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + bias
    return logits.softmax(-1) @ v
