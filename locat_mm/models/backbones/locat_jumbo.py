"""LocAtJumbo: LocAt on Jumbo (the authors' ``locatjumbo_{tiny,base}``)."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import ModuleList
from torch import Tensor

from ...layers import FFN, JumboEncoderLayer, resize_pos_embed
from ...registry import register_everywhere
from ..family_ckpt_convert import adapt_jumbo_state_dict
from .family_base import FamilyBackbone
from .interface import check_positive_int, norm_builder


@register_everywhere
class LocAtJumbo(FamilyBackbone):
    """LocAt on Jumbo: J class tokens with one shared wide MLP, plus GAug and PRR.

    As the authors' ``locatjumbo_*`` (Jumbo: Fuller et al. 2025, timm ``VisionTransformer``
    layout): J = 6 class tokens (``cls_token`` (1, J, C)); a learned position embedding on the
    patches only, resized (bicubic, antialiased, as timm) to the grid of each input; in every
    block the attention over all tokens, the MLP on the patches and the jumbo MLP (key
    ``jumbo_mlp``, one instance for all blocks, width J * C, ratio 4) on the J class tokens
    concatenated, with the block's own norm ``ln3`` and layer scale ``gamma3``. After the
    blocks: LayerNorm ``ln1`` over the concatenated class tokens (width J * C) and a separate
    LayerNorm ``ln_patches`` over the patches; PRR over all tokens; the classification feature
    is the J class tokens concatenated, (B, J * C). GAug counts the J class tokens as prefix.

    With ``gaug=False, prr=False`` it is the plain Jumbo (``jumbo_{tiny,base}``), which has no
    ``ln_patches`` (see ``patch_final_norm``). LocAt adds GAug's 3c + 3 parameters per block
    (c the head width) and ``ln_patches``' 2C.

    Args:
        arch, img_size, patch_size, in_channels, out_indices, out_type, final_norm, prr,
            gaug, frozen_stages, init_cfg, pretrained: See :class:`FamilyBackbone`.
            ``frozen_stages`` freezes the shared jumbo MLP only with every block (it serves
            all of them).
        drop_rate (float): Dropout after the embedding, the attention projection and in MLPs.
        drop_path_rate (float): Stochastic depth, increasing linearly to this over the blocks.
        attn_drop_rate (float): Dropout on attention weights.
        qkv_bias (bool): Bias in the qkv projections.
        norm_cfg (dict): Norm of the blocks' ``ln1``/``ln2`` (mmcv registry).
        jumbo_norm_cfg (dict): Norm of ``ln3``, the final ``ln1`` and ``ln_patches``
            (the authors': ``nn.LayerNorm``, eps 1e-5).
        layer_scale_init_value (float): Initial layer scale of all three branches.
        num_class_tokens (int): J.
        jumbo_mlp_ratio (float): Hidden width of the jumbo MLP over J * C.
        patch_final_norm (bool, optional): Build ``ln_patches`` (applied with the final norm).
            None (default): with PRR, as the authors (the patches are PRR's keys).
        interpolate_mode (str): How the position embedding is resized (antialiased, as timm:
            at run time for inputs of another size, and at load from a checkpoint of another
            grid, ``adapt_jumbo_state_dict``).
        gaug_impl (str): See ``LocAtAttention``.
        with_cp (bool): Gradient checkpointing of every block.
    """
    adapt_state_dict = staticmethod(adapt_jumbo_state_dict)
    # The position embedding covers the patches only, resized antialiased (as timm).
    num_pos_prefix = 0
    pos_embed_antialias = True

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
                 jumbo_norm_cfg: Optional[dict] = None,
                 final_norm: bool = True,
                 out_type: str = 'cls_token',
                 frozen_stages: int = -1,
                 layer_scale_init_value: float = 1e-4,
                 num_class_tokens: int = 6,
                 jumbo_mlp_ratio: float = 4.,
                 patch_final_norm: Optional[bool] = None,
                 interpolate_mode: str = 'bicubic',
                 gaug: bool = True,
                 prr: bool = True,
                 gaug_impl: str = 'auto',
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None,
                 pretrained: Optional[str] = None) -> None:
        check_positive_int('num_class_tokens', num_class_tokens)
        norm_cfg = dict(norm_cfg or dict(type='LN', eps=1e-6))
        jumbo_norm = norm_builder(dict(jumbo_norm_cfg or dict(type='LN', eps=1e-5)))
        super().__init__(arch, img_size, patch_size, in_channels, out_indices, out_type,
                         final_norm, prr, gaug,
                         dict(drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                              attn_drop_rate=attn_drop_rate),
                         frozen_stages, num_class_tokens, norm_cfg, init_cfg, pretrained)
        self.num_class_tokens = num_class_tokens
        self.interpolate_mode = interpolate_mode
        width = num_class_tokens * self.embed_dims
        self.cls_token = nn.Parameter(torch.zeros(1, num_class_tokens, self.embed_dims))
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, self.embed_dims))
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        self.jumbo_mlp = FFN(width, int(width * jumbo_mlp_ratio), ffn_drop=drop_rate)
        self.layers = ModuleList([
            JumboEncoderLayer(
                num_class_tokens,
                self.embed_dims,
                self.num_heads,
                self.arch_settings['feedforward_channels'],
                self.patch_resolution,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=float(rate),
                qkv_bias=qkv_bias,
                layer_scale_init_value=layer_scale_init_value,
                norm_layer=norm_builder(norm_cfg),
                jumbo_norm_layer=jumbo_norm,
                gaug=gaug,
                gaug_impl=gaug_impl,
                with_cp=with_cp)
            for rate in np.linspace(0, drop_path_rate, self.num_layers)
        ])
        patch_final_norm = prr if patch_final_norm is None else patch_final_norm
        if final_norm:
            self.ln1 = jumbo_norm(width)
            if patch_final_norm:
                self.ln_patches = jumbo_norm(self.embed_dims)
        self._finish_build()

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Images -> (J class tokens, patches + position embedding) and the grid."""
        x, grid = self.patch_embed(x)
        pos_embed = resize_pos_embed(self.pos_embed, self.patch_resolution, grid,
                                     self.interpolate_mode, self.num_pos_prefix,
                                     antialias=self.pos_embed_antialias)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x + pos_embed], dim=1)
        return self.drop_after_pos(x), grid

    def run_layer(self, layer: nn.Module, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        return layer(x, grid, self.num_extra_tokens, self.jumbo_mlp)

    def apply_final_norm(self, x: Tensor) -> Tensor:
        J = self.num_class_tokens
        cls = self.ln1(x[:, :J].flatten(1)).view(x.shape[0], J, -1)
        patches = x[:, J:]
        if hasattr(self, 'ln_patches'):
            patches = self.ln_patches(patches)
        return torch.cat([cls, patches], dim=1)

    def pool_class_tokens(self, prefix: Tensor) -> Tensor:
        return prefix.flatten(1)
