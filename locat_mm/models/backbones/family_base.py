"""What LocAt's RoPE-ViT and Jumbo backbones share: arch tables, outputs, freezing, layer
depth, initialisation and checkpoint loading, with mmpretrain-style arguments.

The families differ only in their tokens, blocks and final norms, which the subclasses
(``LocAtRoPEViT``, ``LocAtJumbo``) define; the maths is in ``locat_mm/layers``.
"""
import copy
import re
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize, trunc_normal_
from torch import Tensor

from ...layers import PadPatchEmbed, PatchRepresentationRefinement, to_2tuple
from ..ckpt_convert import describe_mismatch, mismatched_keys
from .pretrained import check_fit, parse_out_indices, read_backbone_state_dict

# Architectures of the authors' models (patch 16, MLP ratio 4), with mmpretrain's names.
FAMILY_ARCH_ZOO = {
    **dict.fromkeys(['t', 'tiny'], dict(
        embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768)),
    **dict.fromkeys(['s', 'small'], dict(
        embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536)),
    **dict.fromkeys(['b', 'base'], dict(
        embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)),
}


def norm_factory(norm_cfg: dict) -> Callable[[int], nn.Module]:
    """``norm_cfg`` -> a callable building the norm for a given width (mmcv's registry)."""
    return lambda num_features: build_norm_layer(norm_cfg, num_features)[1]


class FamilyBackbone(BaseModule):
    """Base of the LocAt family backbones (not registered; see the subclasses).

    Token layout: ``num_extra_tokens`` prefix (class) tokens, then the patches row-major.
    GAug leaves the prefix out, dense outputs drop it, PRR runs over every token.

    Args:
        arch (str | dict): ``'t'``/``'tiny'``, ``'s'``/``'small'``, ``'b'``/``'base'`` or a
            dict with ``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``.
        img_size (int | tuple): Size the model is built for (GAug's base grid); a multiple
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
        frozen_stages (int): Freeze the embeddings and the first ``frozen_stages`` blocks
            (``num_layers``: everything, final norms included).
        num_extra_tokens (int): Prefix tokens P.
        norm_cfg (dict): Norm of the blocks (mmcv registry); also ``ln2``.
        init_cfg (dict | list[dict], optional): See :meth:`init_weights`.
    """
    arch_zoo = FAMILY_ARCH_ZOO
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')
    # Parameters before the first block (depth 0 for layer-wise lr decay, frozen first).
    EMBEDDING_KEYS: Tuple[str, ...] = ('cls_token', 'pos_embed', 'patch_embed')
    # Checkpoint keys a backbone may lack without the checkpoint being of another model.
    READOUT_KEY = re.compile(r'^(head|ln1|ln2|ln_patches)\.')

    def __init__(self,
                 arch: Union[str, dict],
                 img_size: Union[int, Sequence[int]],
                 patch_size: int,
                 in_channels: int,
                 out_indices: Union[int, Sequence[int]],
                 out_type: str,
                 final_norm: bool,
                 prr: bool,
                 frozen_stages: int,
                 num_extra_tokens: int,
                 norm_cfg: dict,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'Unsupported out_type {out_type!r}: choose from {self.OUT_TYPES}')
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        self.arch_settings = self._parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        self.num_heads = self.arch_settings['num_heads']
        self.img_size = to_2tuple(img_size)
        if any(side % patch_size for side in self.img_size):
            raise ValueError(
                f'img_size {self.img_size} is not a multiple of patch_size {patch_size}: set it '
                'to the size the weights were trained at (e.g. 224); inputs of other sizes are '
                'padded at run time.')
        self.patch_embed = PadPatchEmbed(in_channels, self.embed_dims, kernel_size=patch_size)
        self.patch_resolution = self.patch_embed.output_grid(self.img_size)
        self.num_extra_tokens = num_extra_tokens
        self.out_indices = parse_out_indices(out_indices, self.num_layers, 'blocks')
        self.out_type = out_type
        self.final_norm = final_norm
        self.with_prr = prr
        self.prr = PatchRepresentationRefinement(self.num_heads) if prr else nn.Identity()
        if out_type == 'avg_featmap':
            self.ln2 = norm_factory(norm_cfg)(self.embed_dims)
        self.frozen_stages = frozen_stages

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'Unknown arch {arch!r}: choose from {sorted(self.arch_zoo)} '
                                 'or pass a dict')
            return dict(self.arch_zoo[arch.lower()])
        needed = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
        if not isinstance(arch, dict) or not needed <= set(arch):
            raise ValueError(f'A custom arch must be a dict with keys {sorted(needed)}')
        return dict(arch)

    # ------------------------------------------------------------------ family hooks
    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Images (B, C_in, H, W) -> tokens (B, P + H'*W', C) and the grid (H', W')."""
        raise NotImplementedError

    def run_layer(self, layer: nn.Module, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """One block on the tokens."""
        return layer(x, grid, self.num_extra_tokens)

    def apply_final_norm(self, x: Tensor) -> Tensor:
        """The family's final norm(s) on all tokens."""
        raise NotImplementedError

    def pool_class_tokens(self, prefix: Tensor) -> Tensor:
        """(B, P, C) prefix tokens -> the classification feature."""
        raise NotImplementedError

    @staticmethod
    def convert_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """A checkpoint's backbone state dict (the authors' layout or this project's) in this
        project's layout."""
        raise NotImplementedError

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

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialises, then loads a ``Pretrained`` checkpoint when ``init_cfg`` has one.

        - ``init_cfg`` None or only ``Pretrained``: the authors' initialisation.
        - Other entries (e.g. ``dict(type='Kaiming', layer='Conv2d')``) are applied instead.
        - ``dict(type='Pretrained', checkpoint=PATH, prefix=None, strict=True)`` then loads
          this project's weights, an OpenMMLab model's (``backbone.`` found automatically) or
          the authors' (timm layout, converted by :meth:`convert_state_dict`); keys that do
          not fit raise an error naming them unless ``strict=False``.
        """
        cfgs = self.init_cfg if isinstance(self.init_cfg, (list, tuple)) else \
            [self.init_cfg] if self.init_cfg else []
        pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
        others = [cfg for cfg in cfgs if cfg.get('type') != 'Pretrained']
        if len(pretrained) > 1:
            raise ValueError('init_cfg has more than one Pretrained entry')
        if others:
            initialize(self, others)
        else:
            self._init_as_reference()
        if pretrained:
            cfg = pretrained[0]
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'),
                                 map_location=cfg.get('map_location', 'cpu'),
                                 strict=cfg.get('strict', True))
        self._is_init = True

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        map_location: str = 'cpu', strict: bool = True) -> None:
        """Loads backbone weights from a checkpoint file (see :meth:`init_weights`).

        Args:
            checkpoint (str): Path or URL (anything mmengine's loaders read).
            prefix (str, optional): Where the backbone sits in the checkpoint; by default
                ``backbone.`` when present, else the whole state dict.
            map_location (str): Device to load tensors to.
            strict (bool): Raise on keys that do not fit (classifier and final-norm keys
                excused); with False they are only logged.
        """
        state_dict = self.convert_state_dict(
            read_backbone_state_dict(checkpoint, prefix, map_location))
        name = type(self).__name__
        check_fit(self.state_dict().keys(), state_dict.keys(), checkpoint, self._mismatched,
                  lambda *args: describe_mismatch(*args).replace('this LocAtViT', f'this {name}'),
                  strict)
        self.load_state_dict(state_dict, strict=False)
        MMLogger.get_current_instance().info(f'{name}: loaded {checkpoint}')

    @classmethod
    def _mismatched(cls, model_keys: Iterable[str],
                    ckpt_keys: Iterable[str]) -> Tuple[list, list]:
        missing, unexpected = mismatched_keys(model_keys, ckpt_keys)
        return missing, [k for k in unexpected if not cls.READOUT_KEY.match(k)]

    # ------------------------------------------------------------------ training state
    def _freeze_stages(self) -> None:
        for name, param in self.named_parameters():
            if name.split('.')[0] in self.EMBEDDING_KEYS:
                param.requires_grad = False
        frozen = [self.patch_embed] + list(self.layers[:self.frozen_stages])
        if self.frozen_stages >= self.num_layers:
            frozen += [m for name, m in self.named_children()
                       if name not in ('patch_embed', 'layers')]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'FamilyBackbone':
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer-wise lr-decay depth of a parameter, as mmpretrain's ViT counts it.

        Returns:
            tuple[int, int]: depth (0 for embeddings, i + 1 for block i, ``num_layers + 1``
            for everything else) and the number of depths, ``num_layers + 2``.
        """
        num_depths = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name.split('.')[0] in self.EMBEDDING_KEYS:
            return 0, num_depths
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, num_depths
        return num_depths - 1, num_depths

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Images (B, C_in, H, W) -> one output per ``out_indices`` entry (see ``out_type``)."""
        x, grid = self.embed(x)
        outs = []
        last = self.num_layers - 1
        for i, layer in enumerate(self.layers):
            x = self.run_layer(layer, x, grid)
            if i == last and self.final_norm:
                x = self.apply_final_norm(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, grid, is_last=i == last))
        return tuple(outs)

    def _format_output(self, x: Tensor, grid: Tuple[int, int], is_last: bool) -> Tensor:
        P = self.num_extra_tokens
        if self.out_type == 'raw':
            return x
        if self.out_type == 'featmap':
            return x[:, P:].transpose(1, 2).reshape(x.shape[0], -1, *grid).contiguous()
        # PRR refines only the tokens pooled (its rows are independent; every token is a key).
        cls_only = self.out_type == 'cls_token'
        pooled = slice(0, P) if cls_only else slice(P, None)
        tokens = self.prr(x, pooled) if is_last and self.with_prr else x[:, pooled]
        return self.pool_class_tokens(tokens) if cls_only else self.ln2(tokens.mean(dim=1))

