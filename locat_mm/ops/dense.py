"""GAug attention by the formula as written, every tensor materialised: the oracle, and the
plain-ATen graph that exporters without the custom operator get (``gaug_attention.py``)."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_prefix(patch_bias: Tensor, num_prefix: int) -> Tensor:
    """Zero-pads a (B, heads, N, N) patch bias to (B, heads, P + N, P + N) for P prefix tokens."""
    if num_prefix == 0:
        return patch_bias
    return F.pad(patch_bias, (num_prefix, 0, num_prefix, 0))


def gaussian_bias(var: Tensor, amp: Tensor, grid: Tuple[int, int], eps: float,
                  floor: float) -> Tensor:
    """``B_ij = a_i exp(sum_axis max(-0.5 d_axis^2, floor) / (v_i,axis + eps))`` (SPEC 1).

    Builds the (N, N, 2) distance tensor and never uses separability.

    Args:
        var (Tensor): (B, heads, N, 2) per-axis variances (rows, columns) of patch queries.
        amp (Tensor): (B, heads, N, 1) amplitudes.
        grid (tuple[int, int]): (H, W), N = H * W in row-major order.
        eps (float): Variance offset.
        floor (float): Lower clamp of the halved squared distances.

    Returns:
        Tensor: (B, heads, N, N) float32.
    """
    H, W = grid
    ys, xs = torch.meshgrid(
        torch.arange(H, device=var.device, dtype=torch.float32),
        torch.arange(W, device=var.device, dtype=torch.float32),
        indexing='ij')
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=-1)  # (N, 2)
    dist = (-0.5 * (pos[:, None, :] - pos[None, :, :])**2).clamp_min(floor)
    expo = (dist / (var.float().unsqueeze(-2) + eps)).sum(-1)  # (B, heads, N, N)
    return amp.float() * torch.exp(expo)


def dense_biased_attention(q: Tensor,
                           k: Tensor,
                           v: Tensor,
                           patch_bias: Tensor,
                           num_prefix: int,
                           dropout_p: float = 0.0) -> Tensor:
    """``softmax(q k^T / sqrt(c) + B) v``, every tensor materialised: the reference formulation.

    Args:
        q, k, v (Tensor): (B, heads, P + N, c).
        patch_bias (Tensor): (B, heads, N, N) bias between patch tokens.
        num_prefix (int): P, the tokens (class token, registers) that get no bias.
        dropout_p (float): Dropout on the attention weights.

    Returns:
        Tensor: (B, heads, P + N, c).
    """
    logits = (q @ k.transpose(-2, -1)) * (q.shape[-1]**-0.5)
    logits = logits.float() + pad_prefix(patch_bias.float(), num_prefix)
    attn = logits.softmax(dim=-1).to(v.dtype)
    attn = F.dropout(attn, p=dropout_p, training=dropout_p > 0)
    return attn @ v


def dense_gaug_attention(q: Tensor, k: Tensor, v: Tensor, var: Tensor, amp: Tensor,
                         grid: Tuple[int, int], num_prefix: int, eps: float, floor: float,
                         dropout_p: float = 0.0) -> Tensor:
    """GAug attention from the variances and amplitudes, by the formula as written.

    Same arguments as :func:`locat_mm.ops.gaug_attention.gaug_attention`, plus attention
    dropout; the result has q's dtype.
    """
    bias = gaussian_bias(var, amp, grid, eps, floor)
    return dense_biased_attention(q, k, v, bias.to(q.dtype), num_prefix, dropout_p)
