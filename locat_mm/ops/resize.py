"""Antialiased resizing of a feature grid as two interpolation-weight matrices, in plain ops.

``F.interpolate(..., antialias=True)`` (what the reference uses to resize position embeddings)
is ``aten::_upsample_bi{linear,cubic}2d_aa``, which ONNX (opset 17) cannot express. The same
resize is separable: ``out = Wy @ grid @ Wx^T`` with one (out, in) weight matrix per axis. The
matrices are built here from ``arange`` with torch's own rule (PIL's), so the result equals
torch's kernel to float rounding, exports to any format, and the sizes may be symbolic.
"""
from typing import Tuple

import torch
from torch import Tensor

# Half-width of each filter at scale 1, and the cubic's coefficient (PIL's and torch's -0.5).
_SUPPORT = {'bilinear': 1.0, 'bicubic': 2.0}
_CUBIC_A = -0.5


def _filter(x: Tensor, mode: str) -> Tensor:
    x = x.abs()
    if mode == 'bilinear':
        return (1.0 - x).clamp_min(0.0)
    a = _CUBIC_A
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def antialias_weights(in_size: int, out_size: int, mode: str,
                      device: torch.device = None) -> Tensor:
    """(out_size, in_size) float32 weights of torch's antialiased resize along one axis.

    As ``F.interpolate(mode=mode, antialias=True, align_corners=False)`` with a target size:
    output ``i`` is centred at input coordinate ``scale * (i + 0.5)``, ``scale = in / out``;
    when shrinking, the filter is stretched by ``scale``; taps are limited to the window torch
    uses and normalised to sum 1.
    """
    if mode not in _SUPPORT:
        raise ValueError(f'antialiased resize supports {tuple(_SUPPORT)}, got {mode!r}')
    src = torch.arange(in_size, device=device, dtype=torch.float32)
    dst = torch.arange(out_size, device=device, dtype=torch.float32)
    scale = torch.full((), in_size, device=device, dtype=torch.float32) / out_size
    stretch = scale.clamp_min(1.0)
    support = _SUPPORT[mode] * stretch
    center = scale * (dst + 0.5)  # (out,)
    # torch's window: [trunc(center - support + 0.5), trunc(center + support + 0.5)), clipped.
    low = torch.floor(center - support + 0.5).clamp_min(0)
    high = torch.floor(center + support + 0.5)
    in_window = (src[None, :] >= low[:, None]) & (src[None, :] < high[:, None])
    taps = _filter((src[None, :] - center[:, None] + 0.5) / stretch, mode)
    taps = torch.where(in_window, taps, torch.zeros_like(taps))
    return taps / taps.sum(-1, keepdim=True)


def resize_antialiased(grid: Tensor, size: Tuple[int, int], mode: str = 'bicubic') -> Tensor:
    """``F.interpolate(grid, size, mode=mode, antialias=True)`` as two matrix products.

    Args:
        grid (Tensor): (B, C, H, W), floating point.
        size (tuple[int, int]): (H', W'); may be symbolic.
        mode (str): ``'bicubic'`` or ``'bilinear'``.

    Returns:
        Tensor: (B, C, H', W'), grid's dtype.
    """
    B, C, H, W = grid.shape
    rows = antialias_weights(H, size[0], mode, grid.device).to(grid.dtype)
    cols = antialias_weights(W, size[1], mode, grid.device).to(grid.dtype)
    # Two 2-d products with the fixed sizes (W, B, C) folded into the columns: a 4-d matmul
    # would fold the new, possibly symbolic sizes into its batch, and ``torch.export`` could
    # not prove that reshape valid at every size.
    x = rows @ grid.permute(2, 3, 0, 1).reshape(H, W * B * C)  # (H', W*B*C)
    x = x.unflatten(1, (W, B * C)).transpose(0, 1).reshape(W, -1)  # (W, H'*B*C)
    x = (cols @ x).unflatten(1, (rows.shape[0], B, C))  # (W', H', B, C)
    return x.permute(2, 3, 1, 0)
