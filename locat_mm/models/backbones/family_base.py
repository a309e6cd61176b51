"""What LocAt's RoPE-ViT and Jumbo backbones share: their common modules (patch embedding,
PRR, ``ln2``) built from checked mmpretrain-style arguments, on the glue every backbone shares
(argument checks and parsing: ``interface.py``; arch names: ``vit_args.py``; initialisation
order and checkpoint loading through the family's adapter: ``pretrained.py``; block loop,
outputs, freezing and layer depth, as LocAtViT's: ``token_outputs.py``).

The families differ only in their tokens, blocks, final norms and checkpoint adapters, which
the subclasses (``LocAtRoPEViT``, ``LocAtJumbo``) define; the maths is in ``locat_mm/layers``.
"""
import copy
import re
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ...layers import PadPatchEmbed, PatchRepresentationRefinement
from ..ckpt_convert import describe_mismatch, mismatched_keys
from .interface import (ArgumentError, check_flag, check_positive_int, check_rate,
                        merge_pretrained, norm_builder, parse_out_indices, parse_size)
from .pretrained import AdaptedLoading, init_backbone, record_geometry
from .token_outputs import TokenOutputs
from .vit_args import FAMILY_ARCH_NAMES, parse_vit_arch


class FamilyBackbone(TokenOutputs, AdaptedLoading, BaseModule):
    """Base of the LocAt family backbones (not registered; see the subclasses).

    Token layout: ``num_extra_tokens`` prefix (class) tokens, then the patches row-major.
    GAug leaves the prefix out, dense outputs drop it, PRR runs over every token.

    Args:
        arch (str | dict): ``'t'``/``'tiny'``, ``'s'``/``'small'``, ``'b'``/``'base'`` (the
            authors' sizes: DeiT's, ``vit_args.FAMILY_ARCH_NAMES``) or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``.
        img_size (int | tuple): Size the model is built for (GAug's grid until a checkpoint
            says which grid its GAug maps were trained on: ``gaug_base_grid``); a multiple
            of the patch size. Other input sizes run too (padded at the bottom and right).
        patch_size (int): Patch side.
        in_channels (int): Image channels.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned (negative counts
            from the end).
        out_type (str): ``'cls_token'`` (the class token(s) after the final norm and PRR);
            ``'featmap'`` (B, C, H, W) patches at stride ``patch_size``; ``'avg_featmap'``
            (B, C) the norm ``ln2`` of the mean patch; ``'raw'`` (B, P + H*W, C).
        final_norm (bool): The family's final norm on the last block's output. Dense features
            as the paper takes them need ``final_norm=False``.
        prr (bool): PRR before the class-token and average pooling of the last block.
        gaug (bool): Gaussian-augmented attention in every block (checked here; the
            subclasses build the blocks).
        rates (Mapping[str, float]): The dropout and stochastic-depth rates by argument name,
            each checked to be in [0, 1].
        frozen_stages (int): Freeze the embeddings and the first ``frozen_stages`` blocks
            (``num_layers``: everything, final norms included).
        num_extra_tokens (int): Prefix tokens P.
        norm_cfg (dict): Norm of the blocks (mmcv registry); also ``ln2``.
        init_cfg (dict | list[dict], optional): See :meth:`init_weights`.
        pretrained (str, optional): Checkpoint path; becomes
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)`` as in mmseg.

    Bad arguments raise ``locat_mm.errors.ArgumentError`` (a ``ValueError`` and an
    ``AssertionError``) or ``ArgumentTypeError`` (a ``TypeError`` and an ``AssertionError``)
    naming the argument, as for ``LocAtViT``.
    """
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')
    # Checkpoint keys a backbone may lack without the checkpoint being of another model.
    READOUT_KEY = re.compile(r'^(head|ln1|ln2|ln_patches)\.')
    # The family's checkpoint adapter (``family_ckpt_convert.py``) is the subclass's
    # ``adapt_state_dict`` (read by AdaptedLoading).

    def __init__(self,
                 arch: Union[str, dict],
                 img_size: Union[int, Sequence[int]],
                 patch_size: int,
                 in_channels: int,
                 out_indices: Union[int, Sequence[int]],
                 out_type: str,
                 final_norm: bool,
                 prr: bool,
                 gaug: bool,
                 rates: Mapping[str, Any],
                 frozen_stages: int,
                 num_extra_tokens: int,
                 norm_cfg: dict,
                 init_cfg: Union[dict, List[dict], None] = None,
                 pretrained: Optional[str] = None) -> None:
        # Checks before any module is built, with the errors LocAtViT raises.
        init_cfg = merge_pretrained(init_cfg, pretrained)
        if out_type not in self.OUT_TYPES:
            raise ArgumentError(f'Unsupported out_type {out_type!r}: choose from '
                                f'{self.OUT_TYPES}')
        self.img_size = parse_size('img_size', img_size)
        patch_size = check_positive_int('patch_size', patch_size)
        in_channels = check_positive_int('in_channels', in_channels)
        for name, rate in rates.items():
            check_rate(name, rate)
        check_flag('gaug', gaug)
        check_flag('prr', prr)
        if any(side % patch_size for side in self.img_size):
            raise ArgumentError(
                f'img_size {self.img_size} is not a multiple of patch_size {patch_size}: set it '
                'to the size the weights were trained at (e.g. 224); inputs of other sizes are '
                'padded at run time.')
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        self.arch_settings = parse_vit_arch(arch, FAMILY_ARCH_NAMES)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        self.num_heads = self.arch_settings['num_heads']
        self.patch_embed = PadPatchEmbed(in_channels, self.embed_dims, kernel_size=patch_size)
        self.patch_resolution = self.patch_embed.output_grid(self.img_size)
        self.num_extra_tokens = num_extra_tokens
        self.out_indices = parse_out_indices(out_indices, self.num_layers, 'blocks')
        self.out_type = out_type
        self.final_norm = final_norm
        self.with_prr = prr
        self.prr = PatchRepresentationRefinement(self.num_heads) if prr else nn.Identity()
        if out_type == 'avg_featmap':
            self.ln2 = norm_builder(norm_cfg)(self.embed_dims)
        self.frozen_stages = frozen_stages
        self._register_load_state_dict_pre_hook(self._adapt_state_dict)

    def _finish_build(self) -> None:
        """The subclass's last step, once every layer is built: the grids that travel with
        the weights (:func:`~.pretrained.record_geometry`), then freezing."""
        record_geometry(self, self.patch_resolution)
        if self.frozen_stages > 0:
            self._freeze_stages()

    # ------------------------------------------------------------------ weights
    def _init_as_reference(self) -> None:
        """The authors' (timm) initialisation: trunc-normal(0.02) Linear weights and tokens,
        zero Linear biases. Subclasses add their family's own steps."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for name in self.EMBEDDING_KEYS:
            param = getattr(self, name, None)
            if isinstance(param, nn.Parameter):
                trunc_normal_(param, std=.02)

    def init_weights(self) -> None:
        """Initialises, then loads a ``Pretrained`` checkpoint when ``init_cfg`` has one, in
        the order every backbone shares (:func:`~.pretrained.init_backbone`).

        - ``init_cfg`` None or only ``Pretrained``: the authors' initialisation.
        - Other entries (e.g. ``dict(type='Kaiming', layer='Conv2d')``) are applied instead
          (no toolbox has these families, so nothing is added after them).
        - Either way GAug's maps then start as the authors' (variance 1, SPEC section 1).
        - ``dict(type='Pretrained', checkpoint=PATH, prefix=None, strict=True,
          pos_embed_grid=None)`` then loads this project's weights, an OpenMMLab model's
          (``backbone.`` found automatically) or the authors' (timm layout), through the
          family's adapter (``adapt_state_dict``); keys that do not fit raise an error naming
          them unless ``strict=False``.
        """
        # No upstream class to follow after init_cfg entries: nothing added to them.
        init_backbone(self, self._init_as_reference, lambda: None, self.load_pretrained)

    def describe_mismatch(self, missing: list, unexpected: list, source: str, limit: int = 12,
                          shapes: Optional[dict] = None, target: Optional[str] = None) -> str:
        """ViT's message (:func:`~..ckpt_convert.describe_mismatch`, same arguments) naming
        this family: ``target`` (the backbone as its keys read, e.g. ``'a LocAtViT of width
        192, depth 12'``) follows the family's name, which the keys alone do not tell."""
        name = f'this {type(self).__name__}'
        return describe_mismatch(missing, unexpected, source, limit, shapes,
                                 f'{name}, by its keys {target}' if target else name)

    @classmethod
    def mismatched_keys(cls, model_keys: Iterable[str],
                    ckpt_keys: Iterable[str]) -> Tuple[list, list]:
        missing, unexpected = mismatched_keys(model_keys, ckpt_keys)
        return missing, [k for k in unexpected if not cls.READOUT_KEY.match(k)]
