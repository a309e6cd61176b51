"""LocAtViT's attention layer: qkv, GAug terms, the biased attention kernel, projection."""
from typing import Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops.cuda import flex_biased_attention, flex_supported
from ..ops.dense import dense_biased_attention
from ..ops.factored import factored_biased_attention
from .gaug import GaussianAugmentation

GAUG_IMPLS = ('factored', 'dense', 'flex')


class LocAtAttention(nn.Module):
    """Multi-head self-attention with an optional GAug bias between patch tokens.

    Args:
        embed_dims (int): Token width C.
        num_heads (int): Heads; C must divide into them.
        base_grid (tuple[int, int]): Patch grid the model was built for.
        qkv_bias (bool): Bias in the qkv projection.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after the output projection.
        gaug (bool): Add the Gaussian locality bias.
        gaug_impl (str): ``'factored'`` (memory-lean, default), ``'flex'`` (FlexAttention,
            fused on CUDA: no N x N tensor at all) or ``'dense'`` (the formula as written,
            kept as reference). ``'flex'`` runs the factored path where FlexAttention cannot
            (no FlexAttention in this torch; backward off CUDA); the dense path serves
            attention dropout. All three give the same numbers. ``'factored'`` does not switch
            to flex by itself: FlexAttention compiles a kernel per grid size (seconds to
            minutes on first use), which only the user can judge worth it.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 base_grid: Tuple[int, int],
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 gaug: bool = True,
                 gaug_impl: str = 'factored') -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        if gaug_impl not in GAUG_IMPLS:
            raise ValueError(f'gaug_impl must be one of {GAUG_IMPLS}, got {gaug_impl!r}')
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gaug = GaussianAugmentation(self.head_dims, base_grid) if gaug else None
        self.gaug_impl = gaug_impl

    def forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int) -> Tensor:
        """(B, P + H*W, C) tokens on grid (H, W) -> (B, P + H*W, C)."""
        B, L, C = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, self.head_dims)
        # Contiguous heads: the attention kernels would copy them anyway, and GAug's maps then
        # read q in place (as the kernels' saved input) instead of saving a copy of their own.
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        dropout_p = self.attn_drop if self.training else 0.
        if self.gaug is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        elif self.gaug_impl == 'dense' or dropout_p > 0:
            bias = self.gaug.dense_bias(q[:, :, num_prefix:], grid)
            out = dense_biased_attention(q, k, v, bias.to(q.dtype), num_prefix, dropout_p)
        else:
            terms = self.gaug.terms(q, grid, num_prefix)
            if self.gaug_impl == 'flex' and flex_supported(q, k, v, terms.inv_var, terms.amp):
                out = flex_biased_attention(q, k, v, *terms.factors(), num_prefix)
            else:
                out = factored_biased_attention(q, k, v, terms, num_prefix)
        out = out.transpose(1, 2).reshape(B, L, C)
        return self.proj_drop(self.proj(out))
