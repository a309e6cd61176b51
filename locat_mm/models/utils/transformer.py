"""The attention layer and encoder block of LocAtViT (timm's ViT block, OpenMMLab key names)."""
from typing import Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor

from .attention import dense_biased_attention, factored_biased_attention
from .flex import flex_biased_attention, flex_supported
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


class LocAtEncoderLayer(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))`` then ``x + ffn(ln2(x))``.

    Stochastic depth on both branches, LayerNorm eps 1e-6, GELU MLP; key names follow
    mmpretrain's ``TransformerEncoderLayer`` (``ln1``, ``attn.qkv``, ``attn.proj``, ``ln2``,
    ``ffn.layers.0.0``, ``ffn.layers.1``) plus ``attn.gaug.*``.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        feedforward_channels (int): MLP hidden width.
        base_grid (tuple[int, int]): Patch grid the model was built for.
        drop_rate (float): Dropout after the attention projection and in the MLP.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Stochastic-depth rate of this block.
        qkv_bias (bool): Bias in the qkv projection.
        gaug (bool): Add the Gaussian locality bias.
        gaug_impl (str): See :class:`LocAtAttention`.
        norm_eps (float): LayerNorm epsilon.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 base_grid: Tuple[int, int],
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 gaug: bool = True,
                 gaug_impl: str = 'factored',
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = LocAtAttention(
            embed_dims,
            num_heads,
            base_grid,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            gaug=gaug,
            gaug_impl=gaug_impl)
        self.drop_path = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))
        self.ln2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            act_cfg=dict(type='GELU'),
            add_identity=True)

    def forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int) -> Tensor:
        """(B, P + H*W, C) -> (B, P + H*W, C)."""
        x = x + self.drop_path(self.attn(self.ln1(x), grid, num_prefix))
        return self.ffn(self.ln2(x), identity=x)
