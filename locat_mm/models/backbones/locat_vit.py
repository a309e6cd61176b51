"""LocAtViT: the Locality-Attending Vision Transformer backbone (toolbox glue only).

The maths lives in ``locat_mm/layers`` (plain torch); this module maps the two OpenMMLab
interfaces (mmpretrain's and mmseg's ``VisionTransformer``) onto it, and owns initialisation,
checkpoint loading and output formatting.
"""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor

from ...layers import (LocAtEncoderLayer, PadPatchEmbed, PatchRepresentationRefinement,
                       resize_pos_embed, to_2tuple)
from ...layers.blocks import UpstreamNormNames
from ..ckpt_convert import adapt_vit_state_dict, describe_mismatch, mismatched_keys
from .interface import (ArgumentError, act_builder, check_flag, check_positive_int, check_rate,
                        given_args, merge_pretrained, norm_builder, parse_out_indices,
                        parse_size, resolve_toolbox)
from .pretrained import AdaptedLoading, init_backbone, record_geometry
from .token_outputs import TokenOutputs
from .vit_args import ARCH_ZOO, CONVENTIONS, parse_vit_arch, translate_mmseg_vit

# Keys of mmpretrain's TransformerEncoderLayer that ``layer_cfgs`` may set, and the block's own.
_LAYER_CFG_KEYS = ('embed_dims', 'num_heads', 'feedforward_channels', 'layer_scale_init_value',
                   'drop_rate', 'attn_drop_rate', 'drop_path_rate', 'num_fcs', 'qkv_bias',
                   'ffn_type', 'act_cfg', 'norm_cfg', 'gaug', 'gaug_impl')
# Keys of mmcv's PatchEmbed that ``patch_cfg`` may set.
_PATCH_CFG_KEYS = ('in_channels', 'embed_dims', 'conv_type', 'kernel_size', 'stride', 'padding',
                   'dilation', 'bias', 'norm_cfg', 'input_size')


class LocAtViT(TokenOutputs, AdaptedLoading, UpstreamNormNames, BaseModule):
    """Locality-Attending Vision Transformer (Hajimiri et al., ICLR 2026).

    A plain ViT whose attention logits get a learnable per-query Gaussian bias toward
    neighbouring patches (GAug), and whose final tokens pass one parameter-free attention (PRR)
    before classification pooling. With ``gaug=False, prr=False`` it is the plain ViT and gives
    the same outputs as the toolboxes' own ``VisionTransformer`` for the same arguments and
    weights (with ``pos_embed_antialias=False`` at input sizes other than ``img_size``).

    **Both interfaces.** Every argument of mmpretrain 1.2's ``VisionTransformer`` is accepted
    with its meaning there, and so is every argument of mmseg 1.2's, so swapping
    ``type='VisionTransformer'`` for ``type='LocAtViT'`` in either toolbox's config is enough.
    Where their defaults differ (mmseg: ``final_norm=False``, LayerNorm eps 1e-5, NCHW feature
    maps, no patch-embedding bias, qkv bias also on the output projection, stochastic depth on
    the MLP branch only), the defaults of the toolbox the config was written for apply: see
    ``toolbox``.

    Args (mmpretrain's ``VisionTransformer``):
        arch (str | dict): mmpretrain's ``arch_zoo`` names with their meaning there:
            ``'s'``/``'small'`` (768 wide, 8 layers, 8 heads), ``'b'``/``'base'``,
            ``'l'``/``'large'``, ``'h'``/``'huge'``, ``'eva-g'``/``'eva-giant'``,
            ``'deit-t'``/``'deit-tiny'``, ``'deit-s'``/``'deit-small'`` (the paper's S:
            384 wide, 12 layers, 6 heads), ``'dinov2-s'``/``'dinov2-small'``,
            ``'deit-b'``/``'deit-base'``, ``'dinov2-g'``/``'dinov2-giant'``; also
            ``'t'``/``'tiny'`` (= ``'deit-tiny'``, the paper's T). Or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``.
            Default ``'base'``.
        img_size (int | tuple): Image size the model is built for; sets the position-embedding
            grid and GAug's base grid. Other sizes run too (padded, embedding resized).
        patch_size (int): Patch side.
        in_channels (int): Image channels.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned (negative counts
            from the end).
        drop_rate (float): Dropout after the position embedding, projections and MLPs.
        drop_path_rate (float): Stochastic depth, increasing linearly to this over the blocks.
        qkv_bias (bool): Bias in the qkv projections.
        norm_cfg (dict): Norm of the blocks, pre-norm and final norms (mmcv registry).
            Default ``dict(type='LN', eps=1e-6)`` (mmseg: ``dict(type='LN')``).
        final_norm (bool): Final norm (``ln1``) on the last block. Default True (mmseg: False).
        out_type (str): ``'cls_token'`` (B, C); ``'featmap'`` (B, C, H, W), stride
            ``patch_size``; ``'avg_featmap'`` (B, C); ``'raw'`` (B, P + H*W, C). Default
            ``'cls_token'`` (mmseg: ``'featmap'``).
        with_cls_token (bool): Prepend a class token.
        frozen_stages (int): Freeze the embeddings and the first ``frozen_stages`` blocks
            (-1: nothing; ``num_layers``: everything, final norms included).
        interpolate_mode (str): ``F.interpolate`` mode of the position-embedding resize.
        layer_scale_init_value (float): Layer scale on both branches of every block (0: none).
        patch_cfg (dict): Overrides of the patch embedding (mmcv ``PatchEmbed`` keys:
            ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``bias``, ``norm_cfg``,
            ``input_size``).
        layer_cfgs (dict | Sequence[dict]): Overrides of every block (or one dict per block),
            mmpretrain ``TransformerEncoderLayer`` keys (``num_heads``,
            ``feedforward_channels``, ``layer_scale_init_value``, ``drop_rate``,
            ``attn_drop_rate``, ``drop_path_rate``, ``num_fcs``, ``qkv_bias``, ``act_cfg``,
            ``norm_cfg``, ``ffn_type='origin'``) plus ``gaug`` and ``gaug_impl``.
        pre_norm (bool): A norm (``pre_norm``) after the embeddings, as CLIP; the patch
            embedding then has no bias (unless ``patch_cfg`` says otherwise).
        init_cfg (dict | list[dict], optional): See :meth:`init_weights`.

    Args (LocAt):
        gaug (bool): Gaussian-augmented attention in every block.
        prr (bool): Patch representation refinement (module ``prr``) before pooling
            (``cls_token`` and ``avg_featmap`` outputs of the last block only; dense outputs
            never get it).
        gaug_impl (str): ``'auto'`` (default), ``'factored'``, ``'flex'`` or ``'dense'``; see
            ``LocAtAttention``.
        num_register_tokens (int): Register tokens K (Darcet et al.), prepended after the class
            token. As in the authors' RegViT (timm ``reg_tokens=K, no_embed_class=True``): with
            K > 0 the position embedding covers the patches only, and the class and register
            tokens are prepended after it is added. All 1 + K prefix tokens are prefix for GAug
            (zero bias rows and columns); PRR runs over all tokens; dense outputs drop them.
        with_pos_embed (bool): Learn an absolute position embedding. With False there is none
            (no ``pos_embed`` key) and GAug is the only positional signal.
        attn_drop_rate (float): Dropout on attention weights (mmseg's argument as well).
        pos_embed_antialias (bool): How the position embedding is resized (when loading a
            checkpoint of another grid, and at run time for inputs of another size). True (the
            default): antialiased, as the authors' reference (timm), which keeps their
            checkpoints exact. False: plain interpolation, as mmpretrain and mmseg resize, so
            their checkpoints reproduce their own outputs at any input size.
        with_cp (bool): Gradient checkpointing of every block, GAug included (mmseg's argument
            as well).
        toolbox (str, optional): Whose defaults apply where mmpretrain's and mmseg's differ:
            ``'mmpretrain'`` or ``'mmseg'``. None (default): mmseg when an mmseg-only argument
            is passed (``embed_dims``, ``num_layers``, ``num_heads``, ``mlp_ratio``,
            ``patch_pad``, ``patch_bias``, ``patch_norm``, ``num_fcs``, ``act_cfg``,
            ``norm_eval``, ``output_cls_token``, ``frozen_exclude``, ``out_origin``: every
            mmseg ViT config passes some), mmpretrain when an mmpretrain-only one is
            (``arch``, ``out_type``, ``layer_scale_init_value``, ``patch_cfg``,
            ``layer_cfgs``); with neither, mmseg inside mmseg's default scope (its Runner),
            else mmpretrain. Arguments of both without ``toolbox`` raise an error. The rule
            is ``interface.resolve_toolbox``, the same for :class:`LocAtSwin`; the choice is
            logged once. Bad arguments raise ``locat_mm.errors.ArgumentError`` (a
            ``ValueError`` and an ``AssertionError``) or ``ArgumentTypeError`` (a
            ``TypeError`` and an ``AssertionError``) naming the argument.

    Args (mmseg's ``VisionTransformer``, used when given):
        embed_dims, num_layers, num_heads, mlp_ratio: The architecture (instead of ``arch``;
            missing ones take mmseg's defaults 768, 12, 12, 4).
        patch_pad (str | int): Padding of the patch embedding (``'corner'``).
        patch_bias (bool): Bias in the patch embedding (mmseg default False).
        patch_norm (bool): A norm after the patch embedding.
        num_fcs (int): Linear layers per MLP.
        act_cfg (dict): MLP activation (mmcv registry), default GELU.
        norm_eval (bool): Keep every LayerNorm in eval mode while training.
        output_cls_token (bool): Each output is ``[featmap, class token]``.
        frozen_exclude (list[str]): Freeze every parameter whose name contains none of these
            (``['all']``: freeze nothing).
        out_origin (bool): Also output the embedding (before the blocks), first.
        pretrained (str, optional): Checkpoint path; becomes
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)`` as in mmseg, with its
            deprecation warning, under either interface (it selects none).
    """
    arch_zoo = ARCH_ZOO
    OUT_TYPES = {'raw', 'cls_token', 'featmap', 'avg_featmap'}
    EMBEDDING_KEYS = ('cls_token', 'reg_token', 'pos_embed', 'patch_embed')
    # Checkpoints of every layout (timm, mmseg, own; hub releases) through one adapter.
    adapt_state_dict = staticmethod(adapt_vit_state_dict)
    mismatched_keys = staticmethod(mismatched_keys)
    describe_mismatch = staticmethod(describe_mismatch)

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: Optional[dict] = None,
                 final_norm: Optional[bool] = None,
                 out_type: Optional[str] = None,
                 with_cls_token: bool = True,
                 frozen_stages: int = -1,
                 interpolate_mode: str = 'bicubic',
                 layer_scale_init_value: Optional[float] = None,
                 patch_cfg: Optional[dict] = None,
                 layer_cfgs: Union[dict, Sequence[dict], None] = None,
                 pre_norm: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None,
                 gaug: bool = True,
                 prr: bool = True,
                 gaug_impl: str = 'auto',
                 num_register_tokens: int = 0,
                 with_pos_embed: bool = True,
                 attn_drop_rate: float = 0.,
                 pos_embed_antialias: bool = True,
                 with_cp: bool = False,
                 toolbox: Optional[str] = None,
                 embed_dims: Optional[int] = None,
                 num_layers: Optional[int] = None,
                 num_heads: Optional[int] = None,
                 mlp_ratio: Optional[float] = None,
                 patch_pad: Union[str, int, None] = None,
                 patch_bias: Optional[bool] = None,
                 patch_norm: Optional[bool] = None,
                 num_fcs: Optional[int] = None,
                 act_cfg: Optional[dict] = None,
                 norm_eval: Optional[bool] = None,
                 output_cls_token: Optional[bool] = None,
                 frozen_exclude: Optional[Sequence[str]] = None,
                 out_origin: Optional[bool] = None,
                 pretrained: Optional[str] = None) -> None:
        given = given_args(locals())
        self.toolbox = resolve_toolbox('LocAtViT', given, CONVENTIONS, toolbox)
        defaults = CONVENTIONS[self.toolbox].defaults
        norm_cfg = copy.deepcopy(norm_cfg if norm_cfg is not None else defaults['norm_cfg'])
        final_norm = defaults['final_norm'] if final_norm is None else final_norm
        out_type = defaults['out_type'] if out_type is None else out_type
        is_seg = self.toolbox == 'mmseg'
        # Checks before any module is built, with the errors upstream raises.
        init_cfg = merge_pretrained(init_cfg, pretrained)
        entries = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
        if any(isinstance(cfg, dict) and cfg.get('type') == 'Pretrained_Part'
               for cfg in entries):
            raise ArgumentError("init_cfg type 'Pretrained_Part' (mmseg's loader for SAM's "
                                "image encoder) is not supported: use type='Pretrained' with "
                                "prefix='image_encoder'.")
        self.img_size = parse_size('img_size', img_size)
        self.patch_size = check_positive_int('patch_size', patch_size)
        self.in_channels = check_positive_int('in_channels', in_channels)
        for name, rate in (('drop_rate', drop_rate), ('drop_path_rate', drop_path_rate),
                           ('attn_drop_rate', attn_drop_rate)):
            check_rate(name, rate)
        for name, flag in (('gaug', gaug), ('prr', prr), ('with_pos_embed', with_pos_embed),
                           ('pos_embed_antialias', pos_embed_antialias)):
            check_flag(name, flag)
        check_positive_int('num_register_tokens', num_register_tokens, minimum=0)
        if out_type not in self.OUT_TYPES:
            raise ArgumentError(f'Unsupported out_type {out_type!r}: choose from '
                                f'{sorted(self.OUT_TYPES)}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ArgumentError('with_cls_token must be True when out_type="cls_token"')
        if output_cls_token and (not with_cls_token or out_type != 'featmap'):
            raise ArgumentError('output_cls_token=True needs with_cls_token=True and '
                                f'out_type="featmap" (got {with_cls_token}, {out_type!r})')
        super().__init__(init_cfg=copy.deepcopy(init_cfg))

        seg_arch = dict(embed_dims=embed_dims, num_layers=num_layers, num_heads=num_heads,
                        mlp_ratio=mlp_ratio)
        if is_seg or any(value is not None for value in seg_arch.values()):
            arch = translate_mmseg_vit(arch, **seg_arch)
        self.arch_settings = parse_vit_arch('base' if arch is None else arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        self.num_heads = self.arch_settings['num_heads']
        self.out_type = out_type
        self.output_cls_token = bool(output_cls_token)
        self.out_origin = bool(out_origin)
        self.with_cls_token = with_cls_token
        self.num_register_tokens = num_register_tokens
        # Prefix tokens (class + registers): GAug leaves them out, dense outputs drop them.
        self.num_extra_tokens = int(with_cls_token) + num_register_tokens
        # Prefix tokens the position embedding covers: the class token as in mmpretrain, none
        # with registers (the authors' RegViT embeds patches only).
        self.num_pos_prefix = 0 if num_register_tokens else int(with_cls_token)
        self.gaug = gaug
        self.interpolate_mode = interpolate_mode
        self.pos_embed_antialias = pos_embed_antialias
        self.norm_eval = bool(norm_eval)
        self.with_cp = with_cp
        norm_layer = norm_builder(norm_cfg)

        self.patch_embed = self._build_patch_embed(
            in_channels, patch_size, pre_norm, patch_cfg, norm_cfg, is_seg,
            dict(patch_pad=patch_pad, patch_bias=patch_bias, patch_norm=patch_norm))
        input_size = (patch_cfg or {}).get('input_size', self.img_size)
        if self.patch_embed.adaptive_padding and any(
                side % stride for side, stride in zip(to_2tuple(input_size),
                                                      self.patch_embed.stride)):
            raise ArgumentError(
                f'img_size {tuple(to_2tuple(input_size))} is not a multiple of the patch stride '
                f'{tuple(self.patch_embed.stride)}: the position embedding and the GAug grid '
                'would be built for a padded image. Set img_size to the size the weights were '
                'trained at (e.g. 224); inputs of any other size are padded at run time.')
        self.patch_resolution = self.patch_embed.output_grid(input_size)

        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) \
            if with_cls_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, num_register_tokens, self.embed_dims)) \
            if num_register_tokens else None
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + self.num_pos_prefix, self.embed_dims)) \
            if with_pos_embed else None
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        self._register_load_state_dict_pre_hook(self._adapt_state_dict)
        self.pre_norm = norm_layer(self.embed_dims) if pre_norm else nn.Identity()

        self.out_indices = parse_out_indices(out_indices, self.num_layers, 'blocks')
        block_defaults = dict(
            embed_dims=self.embed_dims,
            num_heads=self.num_heads,
            feedforward_channels=self.arch_settings['feedforward_channels'],
            layer_scale_init_value=layer_scale_init_value or 0.,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            num_fcs=num_fcs or 2,
            qkv_bias=qkv_bias,
            ffn_type='origin',
            act_cfg=act_cfg or dict(type='GELU'),
            norm_cfg=norm_cfg,
            gaug=gaug,
            gaug_impl=gaug_impl)
        self.layers = ModuleList([
            self._build_layer(block_defaults, cfg, rate, is_seg) for cfg, rate in zip(
                self._parse_layer_cfgs(layer_cfgs), np.linspace(0, drop_path_rate,
                                                                self.num_layers))
        ])
        self.final_norm = final_norm
        if final_norm:
            self.ln1 = norm_layer(self.embed_dims)
        if out_type == 'avg_featmap':
            self.ln2 = norm_layer(self.embed_dims)
        # PRR has no weights; a module so that print(model) and forward hooks see it.
        self.with_prr = prr
        self.prr = PatchRepresentationRefinement(self.num_heads) if prr else nn.Identity()
        record_geometry(self, self.patch_resolution)

        self.frozen_stages = frozen_stages
        if frozen_stages > 0:
            self._freeze_stages()
        self.frozen_exclude = list(frozen_exclude) if frozen_exclude is not None else ['all']
        if 'all' not in self.frozen_exclude:
            for name, param in self.named_parameters():
                if not any(keep in name for keep in self.frozen_exclude):
                    param.requires_grad = False

    # ------------------------------------------------------------------ construction helpers
    def _build_patch_embed(self, in_channels: int, patch_size: int, pre_norm: bool,
                           patch_cfg: Optional[dict], norm_cfg: dict, is_seg: bool,
                           seg: dict) -> PadPatchEmbed:
        """mmpretrain: bias unless pre_norm, then ``patch_cfg``; mmseg: its patch_* args."""
        if is_seg:
            cfg = dict(padding='corner' if seg['patch_pad'] is None else seg['patch_pad'],
                       bias=bool(seg['patch_bias']),
                       norm_cfg=norm_cfg if seg['patch_norm'] else None)
        else:
            cfg = dict(padding='corner', bias=not pre_norm, norm_cfg=None)
        cfg.update(kernel_size=patch_size, stride=patch_size)
        patch_cfg = dict(patch_cfg or {})
        unknown = set(patch_cfg) - set(_PATCH_CFG_KEYS)
        if unknown:
            raise ArgumentError(f'patch_cfg keys {sorted(unknown)} are not supported; '
                                f'known: {list(_PATCH_CFG_KEYS)}')
        if patch_cfg.get('conv_type', 'Conv2d') != 'Conv2d':
            raise ArgumentError(
                f'patch_cfg conv_type must be Conv2d, got {patch_cfg["conv_type"]}')
        if patch_cfg.get('embed_dims', self.embed_dims) != self.embed_dims:
            raise ArgumentError('patch_cfg embed_dims must equal the arch width')
        cfg.update({k: v for k, v in patch_cfg.items()
                    if k not in ('conv_type', 'embed_dims', 'input_size')})
        norm = cfg.pop('norm_cfg')
        return PadPatchEmbed(
            cfg.pop('in_channels', in_channels), self.embed_dims, norm_layer=norm_builder(norm),
            **cfg)

    def _parse_layer_cfgs(self, layer_cfgs: Union[dict, Sequence[dict], None]) -> List[dict]:
        if layer_cfgs is None:
            layer_cfgs = {}
        if isinstance(layer_cfgs, dict):
            layer_cfgs = [layer_cfgs] * self.num_layers
        if len(layer_cfgs) != self.num_layers:
            raise ArgumentError(f'layer_cfgs has {len(layer_cfgs)} entries for '
                                f'{self.num_layers} blocks')
        for cfg in layer_cfgs:
            unknown = set(cfg) - set(_LAYER_CFG_KEYS)
            if unknown:
                raise ArgumentError(f'layer_cfgs keys {sorted(unknown)} are not supported; '
                                    f'known: {list(_LAYER_CFG_KEYS)}')
            if cfg.get('ffn_type', 'origin') != 'origin':
                raise ArgumentError(
                    f"layer_cfgs ffn_type={cfg['ffn_type']!r} (SwiGLU) is not supported by "
                    "LocAtViT; only 'origin' (Linear-GELU-Linear).")
            if cfg.get('embed_dims', self.embed_dims) != self.embed_dims:
                raise ArgumentError('layer_cfgs embed_dims must equal the arch width')
        return [dict(cfg) for cfg in layer_cfgs]

    def _build_layer(self, defaults: dict, overrides: dict, drop_path_rate: float,
                     is_seg: bool) -> LocAtEncoderLayer:
        cfg = {**defaults, 'drop_path_rate': float(drop_path_rate), **overrides}
        act_cfg = cfg['act_cfg']
        qkv_bias = cfg['qkv_bias']
        return LocAtEncoderLayer(
            embed_dims=self.embed_dims,
            num_heads=cfg['num_heads'],
            feedforward_channels=cfg['feedforward_channels'],
            base_grid=self.patch_resolution,
            drop_rate=cfg['drop_rate'],
            attn_drop_rate=cfg['attn_drop_rate'],
            drop_path_rate=cfg['drop_path_rate'],
            qkv_bias=qkv_bias,
            # mmseg's blocks are nn.MultiheadAttention, whose bias flag covers out_proj too
            # and whose residual has no stochastic depth.
            proj_bias=qkv_bias if is_seg else True,
            attn_drop_path=not is_seg,
            layer_scale_init_value=cfg['layer_scale_init_value'],
            num_fcs=cfg['num_fcs'],
            act_layer=act_builder(act_cfg),
            norm_layer=norm_builder(cfg['norm_cfg']),
            gaug=cfg['gaug'],
            gaug_impl=cfg['gaug_impl'],
            with_cp=self.with_cp)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialises, then loads a ``Pretrained`` checkpoint when ``init_cfg`` has one
        (the order both backbones share: :func:`~.pretrained.init_backbone`).

        - ``init_cfg`` None or only ``Pretrained``: the authors' (timm) initialisation:
          trunc-normal(0.02) Linear weights and position embedding, zero Linear biases,
          normal(1e-6) class and register tokens.
        - Other entries (a dict or list, e.g. ``dict(type='Kaiming', layer='Conv2d')``): they
          are applied, then the toolbox's own initialisation on top: mmpretrain's
          (xavier-uniform MLP weights with normal(1e-6) biases) in mmpretrain mode, and in both
          modes trunc-normal(0.02) position embedding, class and register tokens.
        - Either way GAug's maps then start as the authors' (variance 1, SPEC section 1).
        - ``dict(type='Pretrained', checkpoint=PATH, prefix=None, strict=True,
          pos_embed_grid=None)`` then loads this project's, an mmpretrain or mmseg model's
          (``backbone.`` found automatically) or the authors' (timm layout) weights; keys that
          do not fit raise an error naming them unless ``strict=False``. ``pos_embed_grid``
          (H, W) states the grid of a checkpoint's position embedding where neither the
          checkpoint nor its token count tells it.
        """
        init_backbone(self, self._init_as_reference, self._init_as_upstream,
                      self.load_pretrained)

    def _init_as_reference(self) -> None:
        """The authors' (timm) initialisation."""
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)
        for token in (self.cls_token, self.reg_token):
            if token is not None:
                nn.init.normal_(token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _init_as_upstream(self) -> None:
        """What the toolbox's VisionTransformer adds to an ``init_cfg``."""
        if self.toolbox == 'mmpretrain':
            for layer in self.layers:
                for m in layer.ffn.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.xavier_uniform_(m.weight)
                        nn.init.normal_(m.bias, std=1e-6)
        for param in (self.pos_embed, self.cls_token, self.reg_token):
            if param is not None:
                trunc_normal_(param, std=.02)

    def _resize_pos_embed(self, pos_embed: Tensor, src: Tuple[int, int],
                          dst: Tuple[int, int]) -> Tensor:
        return resize_pos_embed(pos_embed, src, dst, self.interpolate_mode, self.num_pos_prefix,
                                antialias=self.pos_embed_antialias)

    @staticmethod
    def resize_pos_embed(pos_embed: Tensor, input_shape: Tuple[int, int],
                         pos_shape: Tuple[int, int], mode: str) -> Tensor:
        """mmseg's ``VisionTransformer.resize_pos_embed``, with its meaning: a (1, 1 + h*w, C)
        embedding (class token first) of grid ``pos_shape`` = (h, w) resized to the grid
        ``input_shape`` by plain ``F.interpolate`` (no antialiasing).

        Returns:
            Tensor: (1, 1 + H*W, C).
        """
        if pos_embed.ndim != 3:
            raise ArgumentError(f'pos_embed must be (1, L, C), got shape {tuple(pos_embed.shape)}')
        h, w = pos_shape
        prefix = pos_embed.shape[1] - h * w
        return resize_pos_embed(pos_embed, (h, w), tuple(input_shape), mode, prefix,
                                antialias=False)

    # ------------------------------------------------------------------ forward
    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Images (B, C_in, H, W) -> tokens (B, P + H'*W', C) with position embedding, then
        ``pre_norm``; the loop over the blocks and the outputs are :class:`TokenOutputs`'.

        Token order: class token, register tokens, patches (row-major).
        """
        x, grid = self.patch_embed(x)
        prefix = [token.expand(x.shape[0], -1, -1)
                  for token in (self.cls_token, self.reg_token) if token is not None]
        x = torch.cat(prefix + [x], dim=1)
        if self.pos_embed is not None:
            pos_embed = self._resize_pos_embed(self.pos_embed, self.patch_resolution, grid)
            # With registers the embedding skips every prefix token (num_pos_prefix = 0).
            covered = x.shape[1] - pos_embed.shape[1]
            x = torch.cat([x[:, :covered], x[:, covered:] + pos_embed], dim=1) \
                if covered else x + pos_embed
        return self.pre_norm(self.drop_after_pos(x)), grid
