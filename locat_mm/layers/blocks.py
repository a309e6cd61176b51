"""LocAtViT's encoder block (timm's ViT block with OpenMMLab key names), plain torch."""
from functools import partial
from typing import Callable, Tuple

import torch.nn as nn
import torch.utils.checkpoint as checkpoint
from torch import Tensor

from .attention import LocAtAttention
from .layer_scale import LayerScale

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]


class DropPath(nn.Module):
    """Stochastic depth: zeroes a whole sample's branch with probability ``drop_prob``.

    Kept samples are scaled by ``1 / (1 - drop_prob)``; identity in eval mode.
    """

    def __init__(self, drop_prob: float = 0.) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1. - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class FFN(nn.Module):
    """The MLP branch: ``num_fcs`` Linear layers with an activation between them.

    Key names and attributes as mmcv's ``FFN`` (which mmpretrain's and mmseg's ViTs and
    Swins use): for ``num_fcs=2``, ``layers.0.0`` (C -> hidden) and ``layers.1`` (hidden -> C),
    then ``gamma2`` (layer scale) when ``layer_scale_init_value > 0``, then ``dropout_layer``
    (stochastic depth of the branch).

    Args:
        embed_dims (int): Token width C.
        feedforward_channels (int): Hidden width.
        num_fcs (int): Linear layers, at least 2.
        act_layer (callable): Builds the activation (no argument).
        ffn_drop (float): Dropout after the activation and after the last Linear.
        layer_scale_init_value (float): Layer scale of the branch; 0 for none.
        drop_path_rate (float): Stochastic depth of the branch (``dropout_layer``).
    """

    def __init__(self,
                 embed_dims: int,
                 feedforward_channels: int,
                 num_fcs: int = 2,
                 act_layer: ActLayer = nn.GELU,
                 ffn_drop: float = 0.,
                 layer_scale_init_value: float = 0.,
                 drop_path_rate: float = 0.) -> None:
        super().__init__()
        if num_fcs < 2:
            raise ValueError(f'num_fcs must be at least 2, got {num_fcs}')
        self.embed_dims = embed_dims
        self.feedforward_channels = feedforward_channels
        self.num_fcs = num_fcs
        layers = []
        width = embed_dims
        for _ in range(num_fcs - 1):
            layers.append(
                nn.Sequential(
                    nn.Linear(width, feedforward_channels), act_layer(), nn.Dropout(ffn_drop)))
            width = feedforward_channels
        layers += [nn.Linear(width, embed_dims), nn.Dropout(ffn_drop)]
        self.layers = nn.Sequential(*layers)
        self.gamma2 = LayerScale(embed_dims, layer_scale_init_value) \
            if layer_scale_init_value > 0 else nn.Identity()
        self.dropout_layer = DropPath(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, C) -> (B, L, C), the branch alone (no residual)."""
        return self.dropout_layer(self.gamma2(self.layers(x)))


class UpstreamNormNames:
    """``norm1`` and ``norm2``: the names upstream's ViT blocks and backbones give ``ln1`` and
    ``ln2`` (a block's two norms; a backbone's final norm and pooled-feature norm)."""

    @property
    def norm1(self) -> nn.Module:
        return self.ln1

    @property
    def norm2(self) -> nn.Module:
        return self.ln2


class LocAtEncoderLayer(UpstreamNormNames, nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))`` then ``x + ffn(ln2(x))``.

    Stochastic depth on the residual branches (``drop_path_attn``, ``ffn.dropout_layer``);
    key names follow mmpretrain's
    ``TransformerEncoderLayer`` (``ln1``, ``attn.qkv``, ``attn.proj``, ``attn.gamma1``, ``ln2``,
    ``ffn.layers.0.0``, ``ffn.layers.1``, ``ffn.gamma2``) plus ``attn.gaug.*``.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        feedforward_channels (int): MLP hidden width.
        base_grid (tuple[int, int]): Patch grid the model was built for.
        drop_rate (float): Dropout after the attention projection and in the MLP.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Stochastic-depth rate of this block.
        qkv_bias (bool): Bias in the qkv projection.
        proj_bias (bool): Bias in the attention's output projection.
        layer_scale_init_value (float): Layer scale on both branches (0: none).
        num_fcs (int): Linear layers of the MLP.
        act_layer (callable): Builds the MLP activation.
        norm_layer (callable): ``norm_layer(embed_dims)`` builds ``ln1`` and ``ln2``.
        attn_drop_path (bool): Stochastic depth on the attention branch too (mmseg's ViT has
            it on the MLP branch only).
        gaug (bool): Add the Gaussian locality bias.
        gaug_impl (str): See :class:`LocAtAttention`.
        with_cp (bool): Gradient checkpointing: keep only the block's input for backward and
            recompute the rest (GAug included) then.
        attn_layer (callable): Builds the attention from ``LocAtAttention``'s arguments
            (another family's attention, e.g. ``RoPELocAtAttention``, with its extras bound).
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
                 proj_bias: bool = True,
                 layer_scale_init_value: float = 0.,
                 num_fcs: int = 2,
                 act_layer: ActLayer = nn.GELU,
                 norm_layer: NormLayer = partial(nn.LayerNorm, eps=1e-6),
                 attn_drop_path: bool = True,
                 gaug: bool = True,
                 gaug_impl: str = 'auto',
                 with_cp: bool = False,
                 attn_layer: Callable[..., LocAtAttention] = LocAtAttention) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.ln1 = norm_layer(embed_dims)
        self.attn = attn_layer(
            embed_dims,
            num_heads,
            base_grid,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            gaug=gaug,
            gaug_impl=gaug_impl,
            proj_bias=proj_bias,
            layer_scale_init_value=layer_scale_init_value)
        self.drop_path_attn = DropPath(drop_path_rate if attn_drop_path else 0.)
        self.ln2 = norm_layer(embed_dims)
        self.ffn = FFN(
            embed_dims,
            feedforward_channels,
            num_fcs=num_fcs,
            act_layer=act_layer,
            ffn_drop=drop_rate,
            layer_scale_init_value=layer_scale_init_value,
            drop_path_rate=drop_path_rate)
        self.with_cp = with_cp

    def _forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int) -> Tensor:
        x = x + self.drop_path_attn(self.attn(self.ln1(x), grid, num_prefix))
        return x + self.ffn(self.ln2(x))

    def forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int) -> Tensor:
        """(B, P + H*W, C) -> (B, P + H*W, C)."""
        if self.with_cp and x.requires_grad:
            return checkpoint.checkpoint(self._forward, x, grid, num_prefix, use_reentrant=False)
        return self._forward(x, grid, num_prefix)
