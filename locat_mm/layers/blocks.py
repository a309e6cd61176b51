"""LocAtViT's encoder block (timm's ViT block with OpenMMLab key names)."""
from typing import Tuple

import torch.nn as nn
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN
from torch import Tensor

from .attention import LocAtAttention


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
