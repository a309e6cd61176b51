"""Jumbo's encoder block: J class tokens, one wide MLP over them, shared by every block.

Jumbo (Fuller et al., "Simpler Fast Vision Transformers with a Jumbo CLS Token", 2025): the
sequence starts with J class tokens. In every block, after the attention over all tokens, the
patches take the usual MLP branch, while the J class tokens are concatenated into one vector of
width J * C that takes a branch of its own through the *jumbo* MLP (its own norm and layer
scale per block; the MLP's weights are one set for the whole network):

    x     <- x + attn(ln1(x))
    cls   <- cls + gamma3 * jumbo_mlp(ln3(cls)),      cls = x[:, :J] as (B, J * C)
    patch <- patch + ffn(ln2(patch)),                  patch = x[:, J:]
"""
from typing import Callable, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as checkpoint
from torch import Tensor

from .blocks import DropPath, LocAtEncoderLayer
from .layer_scale import LayerScale


class JumboEncoderLayer(LocAtEncoderLayer):
    """:class:`LocAtEncoderLayer` with Jumbo's class-token branch (keys ``ln3``, ``gamma3``).

    The jumbo MLP is not a part of the block: the backbone owns the one instance and passes
    it to every block's forward, so the weights (and their gradient) are one set.

    Args:
        num_class_tokens (int): J.
        jumbo_norm_layer (callable): ``jumbo_norm_layer(J * C)`` builds ``ln3``.
        Others: as :class:`LocAtEncoderLayer` (``layer_scale_init_value`` also sets
            ``gamma3``; ``drop_path_rate`` also applies to the class-token branch).
    """

    def __init__(self, num_class_tokens: int, embed_dims: int, *args,
                 jumbo_norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 **kwargs) -> None:
        super().__init__(embed_dims, *args, **kwargs)
        width = num_class_tokens * embed_dims
        self.num_class_tokens = num_class_tokens
        self.ln3 = jumbo_norm_layer(width)
        scale = kwargs.get('layer_scale_init_value', 0.)
        self.gamma3 = LayerScale(width, scale) if scale > 0 else nn.Identity()
        self.drop_path_jumbo = DropPath(kwargs.get('drop_path_rate', 0.))

    def _forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int,
                 jumbo_mlp: nn.Module) -> Tensor:
        x = x + self.drop_path_attn(self.attn(self.ln1(x), grid, num_prefix))
        J = self.num_class_tokens
        cls = x[:, :J].flatten(1)
        cls = cls + self.drop_path_jumbo(self.gamma3(jumbo_mlp(self.ln3(cls))))
        patches = x[:, J:]
        # The block's FFN carries its own stochastic depth (``ffn.dropout_layer``).
        patches = patches + self.ffn(self.ln2(patches))
        return torch.cat([cls.view(x.shape[0], J, -1), patches], dim=1)

    def forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int,
                jumbo_mlp: nn.Module) -> Tensor:
        """(B, J + H*W, C) -> (B, J + H*W, C); ``num_prefix`` (GAug's prefix) is J."""
        if num_prefix != self.num_class_tokens:
            raise ValueError(f'Jumbo block built for {self.num_class_tokens} class tokens got '
                             f'{num_prefix} prefix tokens')
        if self.with_cp and x.requires_grad:
            return checkpoint.checkpoint(
                self._forward, x, grid, num_prefix, jumbo_mlp, use_reentrant=False)
        return self._forward(x, grid, num_prefix, jumbo_mlp)
