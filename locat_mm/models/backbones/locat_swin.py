"""LocAtSwin: Swin Transformer with the LocAt add-on (GAug in every window, PRR at the end)."""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ...layers import PatchRepresentationRefinement, resize_pos_embed
from ...layers.swin_blocks import LocAtSwinStage
from ...layers.window_attention import WindowLocAtAttention
from ...registry import register_everywhere
from ..swin_ckpt_convert import adapt_swin_state_dict, describe_swin_mismatch, swin_mismatch
from .interface import (ArgumentError, check_flag, check_input_channels_at_run_time,
                        check_positive_int, check_rate, given_args, merge_pretrained,
                        norm_builder, parse_out_indices, parse_size, resolve_toolbox)
from .pretrained import AdaptedLoading, init_backbone, record_geometry
from .swin_args import (ARCH_ZOO, CONVENTIONS, parse_swin_arch, stage_layer_kwargs,
                        translate_mmseg_swin)


@register_everywhere
class LocAtSwin(AdaptedLoading, BaseModule):
    """Swin Transformer with LocAt (Hajimiri et al., ICLR 2026), as the authors' LocAtSwin.

    GAug (SPEC section 1) in every window attention, on the window's grid (7 x 7) with no
    prefix tokens, its bias added after the relative-position bias and the shift mask; PRR
    (SPEC section 2, the last stage's heads) on the final-norm output of the last stage, before
    the classifier's average pooling. ``gaug=False, prr=False`` is the plain Swin.

    Two interfaces, one class (which applies: ``toolbox``):

    - **mmpretrain's** ``SwinTransformer`` (``arch``, ``img_size``, ``out_indices=(3, )``,
      ``out_after_downsample``, ``interpolate_mode``, ``pad_small_map``, ``stage_cfgs``,
      ``patch_cfg``; a tuple of outputs; ``frozen_stages=k`` freezes stages ``0..k``): the
      classification default, with PRR on.
    - **mmseg's** ``SwinTransformer`` (``embed_dims``, ``depths``, ``num_heads``,
      ``pretrain_img_size``, ``strides``, ``mlp_ratio``, ``qkv_bias``, ``qk_scale``,
      ``patch_norm``, ``attn_drop_rate``, ``act_cfg``): ``out_indices=(0, 1, 2, 3)``, a list of
      outputs, small maps padded, ``frozen_stages=k`` freezes ``k`` stages, and PRR off (dense
      features never get it). An mmseg Swin config runs with only its backbone ``type``
      changed.

    Both give the same keys (mmpretrain's layout plus ``attn.w_msa.gaug.*``), so mmpretrain's
    and mmseg's Swin weights load into ``gaug=False``, and the authors' timm-layout weights load
    through ``init_cfg`` or ``load_state_dict``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (or ``'t'``,
            ``'s'``, ``'b'``, ``'l'``) or a dict with ``embed_dims``, ``depths``,
            ``num_heads``. Default ``'tiny'``.
        img_size (int | tuple): Input size the model is built for (default 224); other sizes
            run too.
        patch_size (int): Patch side of the embedding (stride 4 by default).
        in_channels (int): Image channels.
        window_size (int): Window side; also GAug's grid.
        drop_rate (float): Dropout after the patch embedding (mmseg: also after the attention
            projection and in the MLP).
        drop_path_rate (float): Stochastic depth, increasing linearly over all blocks.
        out_indices (Sequence[int]): Stages whose outputs are returned (negative counts from
            the end), each (B, C_i, H_i, W_i) after the stage's output norm ``norm{i}``.
        out_after_downsample (bool): Take a stage's output after its patch merging.
        use_abs_pos_embed (bool): An absolute position embedding ``absolute_pos_embed``
            (1, H*W, C) of the built patch grid, trunc-normal(0.02) initialised, added after
            the patch embedding and resized to the input's grid (``interpolate_mode``, plain
            interpolation as mmpretrain), as both upstream Swins. Frozen with the patch
            embedding.
        interpolate_mode (str): ``F.interpolate`` mode of that resize (default bicubic).
        with_cp (bool): Gradient checkpointing in every block.
        frozen_stages (int): Stages to freeze (eval mode, no gradients), with the patch
            embedding and their output norms; -1 freezes nothing. Counted as the interface
            in use counts it (see above).
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
        pad_small_map (bool): Pad maps no larger than a window and keep shifting (dense
            prediction); default False (mmpretrain), True under mmseg's interface.
        norm_cfg (dict | None): The output norms (mmseg: every norm). With mmpretrain's
            interface ``None`` gives features before any output norm (the linear probe).
        stage_cfgs (dict | Sequence[dict]): Extra arguments of each stage
            (:class:`LocAtSwinStage`: ``block_cfgs``, ``downsample_cfg``, ...).
        patch_cfg (dict): Extra arguments of mmcv's ``PatchEmbed``.
        gaug (bool): GAug in every window attention.
        prr (bool, optional): PRR (module ``prr``) on the last stage's output. Default: on
            with mmpretrain's interface (classification), off with mmseg's.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH, prefix=None,
            strict=True)`` loads this project's, mmpretrain's or mmseg's Swin layout
            (``backbone.`` found automatically) or the authors' timm layout; keys that do not
            fit raise an error unless ``strict=False``. Other init configs act as in mmengine;
            without one, weights are initialised as timm's Swin does.
        toolbox (str, optional): ``'mmpretrain'`` or ``'mmseg'``, whose conventions apply.
            None (default): the toolbox whose only-arguments (above) are passed; with
            neither, mmseg inside mmseg's default scope (its Runner), else mmpretrain; the
            same rule as :class:`LocAtViT` (``interface.resolve_toolbox``), logged once.
        pretrain_img_size, embed_dims, depths, num_heads, strides, mlp_ratio, qkv_bias,
        qk_scale, patch_norm, attn_drop_rate, act_cfg: mmseg's arguments, as in mmseg's
            ``SwinTransformer``.
        pretrained (str, optional): Either interface: a checkpoint path, becomes
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)`` as in mmseg (which
            passes ``model.pretrained`` to any backbone); it selects no interface.
    """
    arch_zoo = ARCH_ZOO
    # Checkpoints (the authors', mmpretrain's and mmseg's Swin, own) through one adapter.
    adapt_state_dict = staticmethod(adapt_swin_state_dict)
    mismatched_keys = staticmethod(swin_mismatch)
    describe_mismatch = staticmethod(describe_swin_mismatch)
    num_extra_tokens = 0

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 img_size: Union[int, Tuple[int, int], None] = None,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Union[int, Sequence[int], None] = None,
                 out_after_downsample: Optional[bool] = None,
                 use_abs_pos_embed: bool = False,
                 interpolate_mode: Optional[str] = None,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 pad_small_map: Optional[bool] = None,
                 norm_cfg: Optional[dict] = dict(type='LN'),
                 stage_cfgs: Union[dict, Sequence[dict], None] = None,
                 patch_cfg: Optional[dict] = None,
                 gaug: bool = True,
                 prr: Optional[bool] = None,
                 init_cfg: Union[dict, List[dict], None] = None,
                 *,
                 toolbox: Optional[str] = None,
                 pretrain_img_size: Union[int, Tuple[int, int], None] = None,
                 embed_dims: Optional[int] = None,
                 depths: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 strides: Optional[Sequence[int]] = None,
                 mlp_ratio: Optional[float] = None,
                 qkv_bias: Optional[bool] = None,
                 qk_scale: Optional[float] = None,
                 patch_norm: Optional[bool] = None,
                 attn_drop_rate: Optional[float] = None,
                 act_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None) -> None:
        given = given_args(locals())
        self.toolbox = resolve_toolbox('LocAtSwin', given, CONVENTIONS, toolbox)
        defaults = CONVENTIONS[self.toolbox].defaults
        # Checks before any module is built, with the errors upstream raises.
        init_cfg = merge_pretrained(init_cfg, pretrained)
        check_positive_int('patch_size', patch_size)
        check_positive_int('in_channels', in_channels)
        self.window_size = check_positive_int('window_size', window_size)
        for name, rate in (('drop_rate', drop_rate), ('drop_path_rate', drop_path_rate),
                           ('attn_drop_rate', attn_drop_rate or 0.)):
            check_rate(name, rate)
        check_flag('gaug', gaug)
        check_flag('use_abs_pos_embed', use_abs_pos_embed)
        if prr is not None:
            check_flag('prr', prr)
        if frozen_stages < -1:
            raise ArgumentError(f'frozen_stages must be -1 (nothing) or more, got '
                                f'{frozen_stages}')
        seg_args = {name: value for name, value in locals().items()
                    if name in CONVENTIONS['mmseg'].only_args and value is not None}
        if self.toolbox == 'mmseg' or seg_args:
            clash = [name for name in CONVENTIONS['mmpretrain'].only_args if name in given]
            if clash:
                raise ArgumentError(
                    f"LocAtSwin got mmseg's SwinTransformer arguments ({sorted(seg_args)}) or "
                    f"toolbox='mmseg', and mmpretrain's ({clash}): use one interface.")
            translated = translate_mmseg_swin(
                patch_size=patch_size, drop_rate=drop_rate, norm_cfg=norm_cfg, **seg_args)
            arch, img_size = translated['arch'], translated['img_size']
            stage_cfgs, patch_cfg = translated['stage_cfgs'], translated['patch_cfg']
            norm_cfg, pad_small_map = translated['norm_cfg'], translated['pad_small_map']
        super().__init__(init_cfg=copy.deepcopy(init_cfg))

        self.arch_settings = parse_swin_arch('tiny' if arch is None else arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.depths = list(self.arch_settings['depths'])
        self.num_heads = list(self.arch_settings['num_heads'])
        self.num_layers = len(self.depths)
        self.out_indices = parse_out_indices(
            defaults['out_indices'] if out_indices is None else out_indices, self.num_layers,
            'stages')
        self.out_after_downsample = bool(out_after_downsample)
        self.use_abs_pos_embed = use_abs_pos_embed
        self.interpolate_mode = interpolate_mode or 'bicubic'
        self.norm_eval = norm_eval
        self.gaug = gaug
        self.with_prr = defaults['prr'] if prr is None else prr
        last = self.num_layers - 1
        if self.with_prr and norm_cfg is None and last in self.out_indices:
            raise ArgumentError('prr=True refines the final norm\'s output, and norm_cfg=None '
                                'leaves none: set prr=False for features before the norm.')

        self.patch_embed = PatchEmbed(**{
            'in_channels': in_channels,
            'input_size': parse_size('img_size', 224 if img_size is None else img_size),
            'embed_dims': self.embed_dims,
            'conv_type': 'Conv2d',
            'kernel_size': patch_size,
            'stride': patch_size,
            'norm_cfg': dict(type='LN'),
            **(patch_cfg or {})
        })
        self.patch_resolution = self.patch_embed.init_out_size
        if use_abs_pos_embed:
            # As both upstream Swins: one embedding per patch of the built size, resized with
            # the input's patch grid.
            self.absolute_pos_embed = nn.Parameter(
                torch.zeros(1, self.patch_resolution[0] * self.patch_resolution[1],
                            self.embed_dims))
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        self._register_load_state_dict_pre_hook(self._adapt_state_dict)

        # On the CPU whatever the default device (e.g. 'meta' while sizing a model).
        rates = torch.linspace(0, drop_path_rate, sum(self.depths), device='cpu').tolist()
        self.stages = nn.ModuleList()
        widths = [self.embed_dims]
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            extra = stage_cfgs[i] if isinstance(stage_cfgs, Sequence) else stage_cfgs or {}
            stage = LocAtSwinStage(**{
                'embed_dims': widths[-1],
                'depth': depth,
                'num_heads': heads,
                'window_size': window_size,
                'downsample': i < last,
                'drop_paths': rates[sum(self.depths[:i]):sum(self.depths[:i + 1])],
                'with_cp': with_cp,
                'pad_small_map': bool(pad_small_map),
                'gaug': gaug,
                **stage_layer_kwargs(extra)
            })
            self.stages.append(stage)
            widths.append(stage.out_channels)
        self.num_features = widths[1:] if self.out_after_downsample else widths[:-1]
        for i in self.out_indices:
            norm = nn.Identity() if norm_cfg is None else norm_builder(norm_cfg)(
                self.num_features[i])
            self.add_module(f'norm{i}', norm)
        # PRR has no weights; a module so that print(model) and forward hooks see it.
        self.prr = PatchRepresentationRefinement(self.num_heads[-1]) \
            if self.with_prr else nn.Identity()

        self.frozen_stages = frozen_stages
        # mmpretrain freezes stages 0..k, mmseg the first k.
        self.num_frozen_stages = max(frozen_stages + defaults['frozen_offset'], 0) \
            if frozen_stages >= 0 else 0
        if self.num_frozen_stages > self.num_layers:
            raise ArgumentError(f'frozen_stages={frozen_stages} is out of range for '
                                f'{self.num_layers} stages ({self.toolbox} counts '
                                f'{"from 0" if defaults["frozen_offset"] else "from 1"})')
        self._freeze_stages()
        record_geometry(self, gaug_grid=None)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Initialises, then loads a ``Pretrained`` checkpoint when ``init_cfg`` has one, in the
        order both backbones share (:func:`~.pretrained.init_backbone`): without other
        init_cfg entries as timm's Swin (and the authors' LocAtSwin); with some (a dict or a
        list), those entries then trunc-normal relative-position tables as upstream's window
        attention adds; GAug's maps at the authors' start; a ``Pretrained`` entry last, so its
        weights (relative-position tables included) are what the model ends with."""
        init_backbone(self, self._init_as_reference, self._init_as_upstream,
                      self.load_pretrained)

    def _init_as_reference(self) -> None:
        """timm's Swin initialisation (the authors' LocAtSwin)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._init_as_upstream()

    def _init_as_upstream(self) -> None:
        """What upstream's Swin initialises after an ``init_cfg``: the relative-position
        tables (its window attention's ``init_weights``) and an absolute position embedding."""
        for m in self.modules():
            if isinstance(m, WindowLocAtAttention):
                trunc_normal_(m.relative_position_bias_table, std=.02)
        if self.use_abs_pos_embed:
            trunc_normal_(self.absolute_pos_embed, std=.02)

    # ------------------------------------------------------------------ training state
    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed, self.drop_after_pos]
        if self.use_abs_pos_embed:
            self.absolute_pos_embed.requires_grad = False
        for i in range(self.num_frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'LocAtSwin':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer-wise lr-decay depth of a parameter, as mmpretrain's Swin counts it.

        Returns:
            tuple[int, int]: depth (0 for the patch embedding, ``sum(depths[:i]) + j + 1`` for
            block j of stage i, ``sum(depths[:i + 1])`` for stage i's patch merging,
            ``sum(depths) + 1`` for everything else: output norms, neck, heads) and the number
            of depths, ``sum(depths) + 2``.
        """
        num_depths = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name.startswith('patch_embed'):
            return 0, num_depths
        if name.startswith('stages.'):
            parts = name.split('.')
            stage = int(parts[1])
            if parts[2] == 'downsample':
                return sum(self.depths[:stage + 1]), num_depths
            return sum(self.depths[:stage]) + int(parts[3]) + 1, num_depths
        return num_depths - 1, num_depths

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Union[Tuple[Tensor, ...], List[Tensor]]:
        """Images (B, C_in, H, W) -> one (B, C_i, H_i, W_i) map per ``out_indices`` entry
        (stride ``patch_size * 2**i``; a list under mmseg's interface, else a tuple)."""
        check_input_channels_at_run_time(x, self.patch_embed.projection.in_channels,
                                         'LocAtSwin')
        x, hw = self.patch_embed(x)
        if self.use_abs_pos_embed:
            # Plain interpolation, as mmpretrain resizes (mmseg adds it at its size only).
            x = x + resize_pos_embed(self.absolute_pos_embed, self.patch_resolution, hw,
                                     self.interpolate_mode, 0, antialias=False)
        x = self.drop_after_pos(x)
        outs = []
        last = self.num_layers - 1
        for i, stage in enumerate(self.stages):
            x, hw = stage(x, hw, do_downsample=self.out_after_downsample)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                if i == last:
                    out = self.prr(out)
                outs.append(out.transpose(1, 2).reshape(out.shape[0], -1, *hw).contiguous())
            if stage.downsample is not None and not self.out_after_downsample:
                x, hw = stage.downsample(x, hw)
        return outs if self.toolbox == 'mmseg' else tuple(outs)
