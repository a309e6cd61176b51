"""LocAtSwin's window attention: Swin's (shifted) window attention with a GAug bias.

As in the authors' LocAtSwin, GAug (SPEC section 1) acts inside every window: the window
(``window_size x window_size``) is its patch grid, there are no prefix tokens, and its bias is
added to the logits after Swin's relative-position bias and the shifted-window mask.
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import LocAtAttention

# Logit offset Swin gives token pairs from different regions of a shifted window.
SHIFT_MASK_VALUE = -100.0


def relative_position_index(window: int) -> Tensor:
    """(window^2, window^2) index into the relative-position table, as Swin builds it.

    Entry (i, j) is ``(y_i - y_j + window - 1) * (2 window - 1) + (x_i - x_j + window - 1)``.
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window - 1
    dx = xs[:, None] - xs[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` -> (B * nW, window^2, C), windows in
    row-major order within each image."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)


def window_reverse(windows: Tensor, window: int, hw: Tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window^2, C) -> (B, H, W, C)."""
    H, W = hw
    C = windows.shape[-1]
    x = windows.view(-1, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


@lru_cache(maxsize=32)
def shifted_window_mask(hw: Tuple[int, int], window: int, shift: int,
                        device: torch.device) -> Tensor:
    """(nW, window^2, window^2) additive mask of a map cyclically shifted by ``-shift``.

    After the shift, a window at the bottom or right edge holds tokens of up to four regions
    that were not neighbours; pairs from different regions get ``SHIFT_MASK_VALUE``.
    """
    H, W = hw
    region = torch.zeros(1, H, W, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, window).squeeze(-1)  # (nW, window^2)
    differs = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(differs.shape, device=device).masked_fill(differs, SHIFT_MASK_VALUE)


class WindowLocAtAttention(LocAtAttention):
    """Multi-head self-attention within one window, with Swin's relative-position bias and
    (``gaug=True``) GAug's Gaussian bias on the window grid.

    Logits: ``q k^T * scale + relative-position bias [+ shift mask] [+ GAug bias]``. GAug's maps
    read the unscaled queries. The window holds 49 tokens (7 x 7) at most in practice, so the
    dense (B * nW, heads, N, N) bias is built and handed to ``scaled_dot_product_attention``.

    A :class:`LocAtAttention` (same ``qkv``, ``proj``, ``gaug``), so tools that probe GAug layers
    (``GAugStatsHook``) see these layers too; ``forward`` takes the same leading arguments.

    Args:
        embed_dims (int): Token width C.
        num_heads (int): Heads; C must divide into them.
        window_size (int): Window side; also GAug's grid.
        qkv_bias (bool): Bias in the qkv projection.
        qk_scale (float, optional): Logit scale; default ``head_dims ** -0.5``.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after the output projection.
        gaug (bool): Add the Gaussian locality bias.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 gaug: bool = True) -> None:
        super().__init__(
            embed_dims,
            num_heads, (window_size, window_size),
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop,
            gaug=gaug,
            gaug_impl='dense')
        self.window_size = window_size
        self.scale = qk_scale or self.head_dims**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        # Persistent, as in mmpretrain's and mmseg's WindowMSA, so their checkpoints load as
        # they are; the authors' (timm) checkpoints lack it and get it regenerated.
        self.register_buffer('relative_position_index', relative_position_index(window_size))

    def relative_position_bias(self) -> Tensor:
        """(heads, N, N) bias from the table, N = window_size^2."""
        N = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(N, N, -1).permute(2, 0, 1)

    def forward(self,
                x: Tensor,
                grid: Tuple[int, int],
                num_prefix: int = 0,
                mask: Optional[Tensor] = None) -> Tensor:
        """Attention within each window.

        Args:
            x (Tensor): (B * nW, N, C) window tokens, windows of one image consecutive.
            grid (tuple[int, int]): The window grid, ``(window_size, window_size)``.
            num_prefix (int): Must be 0 (windows have no prefix tokens); kept so that this
                layer is called like every ``LocAtAttention``.
            mask (Tensor, optional): (nW, N, N) additive shifted-window mask.

        Returns:
            Tensor: (B * nW, N, C).
        """
        if num_prefix or tuple(grid) != (self.window_size, self.window_size):
            raise ValueError(f'window attention runs on {self.window_size}x{self.window_size} '
                             f'windows without prefix tokens, got grid {tuple(grid)} and '
                             f'{num_prefix} prefix tokens')
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, self.head_dims)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias().unsqueeze(0)  # (1, heads, N, N)
        if mask is not None:
            num_windows = mask.shape[0]
            # Windows are image-major: window w of image b sits at b * nW + w.
            bias = (bias + mask.unsqueeze(1).to(bias.dtype)).repeat(B_ // num_windows, 1, 1, 1)
        if self.gaug is not None:
            bias = bias + self.gaug.dense_bias(q, grid).to(bias.dtype)
        dropout_p = self.attn_drop if self.training else 0.
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout_p, scale=self.scale)
        out = out.transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(out))
