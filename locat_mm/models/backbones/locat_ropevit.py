"""LocAtRoPEViT: LocAt on RoPE-ViT (the authors' ``locatvit_{tiny,base}_rope_mixed``)."""
import math
from functools import partial
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import ModuleList
from torch import Tensor

from ...layers import LocAtEncoderLayer, RoPELocAtAttention
from ...registry import register_everywhere
from ..family_ckpt_convert import adapt_ropevit_state_dict
from .family_base import FamilyBackbone
from .interface import norm_builder


@register_everywhere
class LocAtRoPEViT(FamilyBackbone):
    """LocAt on RoPE-ViT: a ViT with mixed-mode 2D rotary position embedding and GAug + PRR.

    As the authors' ``locatvit_*_rope_mixed`` (timm ``Eva``): no absolute position embedding;
    in every block RoPE-Mixed (Heo et al. 2024: learnable per-head frequencies, temperature
    10, 'xy' grid indexing) rotates the patch tokens' queries and keys, the class token left
    unrotated; GAug reads the query **before** the rotation; layer scale on both branches
    (init 1e-5); final LayerNorm, PRR, then the class token. With ``gaug=False, prr=False`` it
    is the plain RoPE-ViT (``vit_{tiny,base}_patch16_rope_mixed_224``).

    The rotation follows the grid of each input, so inputs of any size need no resizing
    (sides not a multiple of the patch are zero-padded at the bottom and right).

    Args:
        arch, img_size, patch_size, in_channels, out_indices, out_type, final_norm, prr,
            gaug, frozen_stages, init_cfg, pretrained: See :class:`FamilyBackbone`.
            ``out_type='cls_token'`` gives the class token (B, C); the final norm ``ln1``
            covers every token.
        drop_rate (float): Dropout after the embedding, the attention projection and in MLPs.
        drop_path_rate (float): Stochastic depth, increasing linearly to this over the blocks.
        attn_drop_rate (float): Dropout on attention weights.
        qkv_bias (bool): Bias in the qkv projections.
        norm_cfg (dict): Norm of the blocks and the final norm (mmcv registry).
        layer_scale_init_value (float): Initial layer scale of both branches (keys
            ``attn.gamma1``, ``ffn.gamma2``).
        rope_temperature (float): Base of RoPE-Mixed's initial frequency magnitudes.
        gaug_impl (str): See ``LocAtAttention``.
        with_cp (bool): Gradient checkpointing of every block.
    """
    EMBEDDING_KEYS = ('cls_token', 'patch_embed')
    adapt_state_dict = staticmethod(adapt_ropevit_state_dict)

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: Optional[dict] = None,
                 final_norm: bool = True,
                 out_type: str = 'cls_token',
                 frozen_stages: int = -1,
                 layer_scale_init_value: float = 1e-5,
                 rope_temperature: float = 10.,
                 gaug: bool = True,
                 prr: bool = True,
                 gaug_impl: str = 'auto',
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None,
                 pretrained: Optional[str] = None) -> None:
        norm_cfg = dict(norm_cfg or dict(type='LN', eps=1e-6))
        super().__init__(arch, img_size, patch_size, in_channels, out_indices, out_type,
                         final_norm, prr, gaug,
                         dict(drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                              attn_drop_rate=attn_drop_rate),
                         frozen_stages, 1, norm_cfg, init_cfg, pretrained)
        norm_layer = norm_builder(norm_cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        attn_layer = partial(RoPELocAtAttention, rope_temperature=rope_temperature)
        self.layers = ModuleList([
            LocAtEncoderLayer(
                self.embed_dims,
                self.num_heads,
                self.arch_settings['feedforward_channels'],
                self.patch_resolution,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=float(rate),
                qkv_bias=qkv_bias,
                layer_scale_init_value=layer_scale_init_value,
                norm_layer=norm_layer,
                gaug=gaug,
                gaug_impl=gaug_impl,
                with_cp=with_cp,
                attn_layer=attn_layer)
            for rate in np.linspace(0, drop_path_rate, self.num_layers)
        ])
        if final_norm:
            self.ln1 = norm_layer(self.embed_dims)
        self._finish_build()

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Images -> (class token, patches) (B, 1 + H'*W', C) and the grid; no position
        embedding (RoPE acts inside the attention)."""
        x, grid = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.drop_after_pos(x), grid

    def _init_as_reference(self) -> None:
        """The authors' (timm ``Eva``) initialisation: trunc-normal(0.02) Linear weights and
        class token, zero biases, each block's output projections divided by
        sqrt(2 * (i + 1)); RoPE frequencies as built (random per head)."""
        super()._init_as_reference()
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                for linear in (layer.attn.proj, layer.ffn.layers[-2]):
                    linear.weight.div_(math.sqrt(2. * (i + 1)))
