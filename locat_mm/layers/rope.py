"""Mixed-mode 2D rotary position embedding, and LocAt's attention with it (plain torch).

RoPE-Mixed (Heo et al., "Rotary Position Embedding for Vision Transformer", ECCV 2024): each
head of each block learns its own 2D frequencies. Channel pair ``(2m, 2m + 1)`` of a patch
token's query and key at grid position (row y, column x) is rotated by the angle

    theta_m = x * f_x[m] + y * f_y[m],        m = 0 .. c/2 - 1

('xy' indexing: x counts columns, y rows; positions are patch indices from 0). The frequencies
start at magnitudes ``temperature ** (-4k / c)`` (k = 0 .. c/4 - 1, temperature 10) in two
directions per head, ``phi`` and ``phi + pi/2`` for a random angle ``phi`` per head. Prefix
tokens (the class token) are not rotated. The angles follow the current grid, so inputs of any
size need no resizing.

In LocAt on RoPE-ViT (the authors' ``locatvit_*_rope_mixed``), GAug reads the query **before**
the rotation, and the attention logits use the rotated query and key.
"""
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import LocAtAttention


def init_mixed_frequencies(head_dims: int, num_heads: int, temperature: float = 10.) -> Tensor:
    """RoPE-Mixed's initial frequencies, (2, heads, c/2): x components, then y components.

    Half of each head's pairs point along its random angle ``phi``, the other half along
    ``phi + pi/2``; magnitudes ``temperature ** (-4k / c)`` for k = 0 .. c/4 - 1.
    """
    mag = temperature**(-torch.arange(0, head_dims, 4, dtype=torch.float32) / head_dims)
    phi = torch.rand(num_heads, 1) * 2 * math.pi
    f_x = torch.cat([mag * torch.cos(phi), mag * torch.cos(phi + math.pi / 2)], dim=-1)
    f_y = torch.cat([mag * torch.sin(phi), mag * torch.sin(phi + math.pi / 2)], dim=-1)
    return torch.stack([f_x, f_y])


def grid_positions(grid: Tuple[int, int], device: torch.device) -> Tuple[Tensor, Tensor]:
    """Column and row index of every patch of an (H, W) grid in row-major order, each (H*W,)
    float32."""
    H, W = grid
    rows = torch.arange(H, device=device, dtype=torch.float32)
    cols = torch.arange(W, device=device, dtype=torch.float32)
    # Broadcasts rather than repeats: the sizes may be symbolic (torch.export, ONNX).
    return cols.expand(H, W).flatten(), rows[:, None].expand(H, W).flatten()


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates channel pairs (2m, 2m + 1) of ``x`` (..., c) by angles given as cos and sin,
    (..., c/2) broadcastable; computed in float32, returned in the dtype of ``x``."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1)
    return rotated.flatten(-2).to(x.dtype)


class MixedRoPE(nn.Module):
    """One block's RoPE-Mixed: learnable frequencies ``freqs`` (2, heads, c/2) (x, then y).

    Args:
        head_dims (int): Head width c, a multiple of 4.
        num_heads (int): Heads.
        temperature (float): Base of the initial magnitudes (RoPE-Mixed: 10).
    """

    def __init__(self, head_dims: int, num_heads: int, temperature: float = 10.) -> None:
        super().__init__()
        if head_dims % 4:
            raise ValueError(f'RoPE-Mixed needs a head width divisible by 4, got {head_dims}')
        self.temperature = temperature
        self.freqs = nn.Parameter(init_mixed_frequencies(head_dims, num_heads, temperature))

    def cos_sin(self, grid: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        """cos and sin of the angles for a grid, each (heads, H*W, c/2), float32."""
        cols, rows = grid_positions(grid, self.freqs.device)
        freqs = self.freqs.float()
        angles = cols[:, None] * freqs[0, :, None] + rows[:, None] * freqs[1, :, None]
        return torch.cos(angles), torch.sin(angles)

    def forward(self, q: Tensor, k: Tensor, grid: Tuple[int, int],
                num_prefix: int) -> Tuple[Tensor, Tensor]:
        """Rotates the patch tokens of q and k, (B, heads, P + H*W, c); prefix tokens stay."""
        cos, sin = self.cos_sin(grid)

        def rotate(x: Tensor) -> Tensor:
            return torch.cat([x[:, :, :num_prefix], rotate_pairs(x[:, :, num_prefix:], cos, sin)],
                             dim=2)

        return rotate(q), rotate(k)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}'


class RoPELocAtAttention(LocAtAttention):
    """:class:`LocAtAttention` with RoPE-Mixed on the patch tokens' queries and keys (key
    ``rope.freqs``). GAug reads the query before it is rotated, as the authors' LocAt on
    RoPE-ViT does; everything else (kernels, layer scale, keys) is ``LocAtAttention``'s.

    Args:
        rope_temperature (float): See :class:`MixedRoPE`.
        Others: as :class:`LocAtAttention`.
    """

    def __init__(self, embed_dims: int, num_heads: int, base_grid: Tuple[int, int],
                 rope_temperature: float = 10., **kwargs) -> None:
        super().__init__(embed_dims, num_heads, base_grid, **kwargs)
        self.rope = MixedRoPE(self.head_dims, num_heads, rope_temperature)

    def forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int) -> Tensor:
        """(B, P + H*W, C) tokens on grid (H, W) -> (B, P + H*W, C)."""
        B, L, C = x.shape
        q, k, v = self.split_heads(self.qkv(x))
        # The Gaussian terms come from the un-rotated query (authors' models/ropevit.py).
        terms = None if self.gaug is None else self.gaug(q, grid, num_prefix)
        q, k = self.rope(q, k, grid, num_prefix)
        dropout_p = self.attn_drop if self.training else 0.
        if terms is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            out = self._biased_attention(q, k, v, *terms, grid, num_prefix, dropout_p)
        out = out.transpose(1, 2).reshape(B, L, C)
        return self.gamma1(self.proj_drop(self.proj(out)))
