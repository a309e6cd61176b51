"""LocAtSwin: Swin Transformer with the LocAt add-on (GAug in every window, PRR at the end)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ...layers.prr import parameter_free_attention
from ...layers.swin_blocks import LocAtSwinStage
from ...layers.window_attention import WindowLocAtAttention
from ...registry import register_everywhere
from ..swin_ckpt_convert import (convert_timm_swin_state_dict, describe_swin_mismatch,
                                 drop_stale_buffers, is_timm_swin_layout, swin_mismatch)
from .pretrained import check_fit, parse_out_indices, read_backbone_state_dict


def _mmseg_to_mmpretrain(embed_dims: int = 96,
                         depths: Sequence[int] = (2, 2, 6, 2),
                         num_heads: Sequence[int] = (3, 6, 12, 24),
                         pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                         patch_size: int = 4,
                         strides: Sequence[int] = (4, 2, 2, 2),
                         mlp_ratio: float = 4.,
                         qkv_bias: bool = True,
                         qk_scale: Optional[float] = None,
                         patch_norm: bool = True,
                         drop_rate: float = 0.,
                         attn_drop_rate: float = 0.,
                         act_cfg: Optional[dict] = None,
                         norm_cfg: Optional[dict] = None) -> dict:
    """mmseg's ``SwinTransformer`` arguments (its defaults) as mmpretrain's.

    mmseg's ``norm_cfg`` is every norm's (patch embedding and merging only with
    ``patch_norm``), ``drop_rate`` also drops after the attention projection and in the MLP.
    """
    if strides[0] != patch_size:
        raise ValueError(f'strides[0] ({strides[0]}) must equal patch_size ({patch_size}): '
                         'the patch embedding does not overlap')
    norm_cfg = norm_cfg or dict(type='LN')
    merge_norm = norm_cfg if patch_norm else None
    block = dict(
        ffn_ratio=mlp_ratio,
        attn_cfgs=dict(qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop_rate,
                       proj_drop=drop_rate),
        ffn_cfgs=dict(ffn_drop=drop_rate, act_cfg=act_cfg or dict(type='GELU')),
        norm_cfg=norm_cfg)
    stage_cfgs = [
        dict(block_cfgs=copy.deepcopy(block),
             downsample_cfg=dict(stride=strides[i + 1] if i + 1 < len(depths) else None,
                                 norm_cfg=merge_norm)) for i in range(len(depths))
    ]
    return dict(
        arch=dict(embed_dims=embed_dims, depths=list(depths), num_heads=list(num_heads)),
        img_size=pretrain_img_size,
        stage_cfgs=stage_cfgs,
        patch_cfg=dict(stride=strides[0], norm_cfg=merge_norm),
        norm_cfg=norm_cfg,
        pad_small_map=True)


@register_everywhere
class LocAtSwin(BaseModule):
    """Swin Transformer with LocAt (Hajimiri et al., ICLR 2026), as the authors' LocAtSwin.

    GAug (SPEC section 1) in every window attention, on the window's grid (7 x 7) with no
    prefix tokens, its bias added after the relative-position bias and the shift mask; PRR
    (SPEC section 2, the last stage's heads) on the final-norm output of the last stage, before
    the classifier's average pooling. ``gaug=False, prr=False`` is the plain Swin.

    Two interfaces, one class:

    - **mmpretrain's** ``SwinTransformer`` (``arch``, ``img_size``, ``out_indices=(3, )``,
      ``out_after_downsample``, ``pad_small_map``, ``stage_cfgs``, ``patch_cfg``; a tuple of
      outputs; ``frozen_stages=k`` freezes stages ``0..k``): the classification default, with
      PRR on.
    - **mmseg's** ``SwinTransformer``, selected by passing any argument only it has
      (``embed_dims``, ``depths``, ``num_heads``, ``pretrain_img_size``, ``strides``,
      ``mlp_ratio``, ``qkv_bias``, ``qk_scale``, ``patch_norm``, ``attn_drop_rate``,
      ``act_cfg``, ``pretrained``): ``out_indices=(0, 1, 2, 3)``, a list of outputs, small maps
      padded, ``frozen_stages=k`` freezes ``k`` stages, and PRR off (dense features never get
      it). An mmseg Swin config runs with only its backbone ``type`` changed.

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
        use_abs_pos_embed (bool): Must be False: neither the authors' LocAtSwin nor the
            OpenMMLab Swin configs use an absolute position embedding.
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
        prr (bool, optional): PRR on the last stage's output. Default: on with mmpretrain's
            interface (classification), off with mmseg's.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH, prefix=None,
            strict=True)`` loads this project's, mmpretrain's or mmseg's Swin layout
            (``backbone.`` found automatically) or the authors' timm layout; keys that do not
            fit raise an error unless ``strict=False``. Other init configs act as in mmengine;
            without one, weights are initialised as timm's Swin does.
        pretrain_img_size, embed_dims, depths, num_heads, strides, mlp_ratio, qkv_bias,
        qk_scale, patch_norm, attn_drop_rate, act_cfg, pretrained: mmseg's arguments, as in
            mmseg's ``SwinTransformer``.
    """
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(
            embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['s', 'small'], dict(
            embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24])),
        **dict.fromkeys(['b', 'base'], dict(
            embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])),
        **dict.fromkeys(['l', 'large'], dict(
            embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48])),
    }
    num_extra_tokens = 0

    def __init__(self,
                 arch: Union[str, dict, None] = None,
                 img_size: Union[int, Tuple[int, int], None] = None,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Optional[Sequence[int]] = None,
                 out_after_downsample: bool = False,
                 use_abs_pos_embed: bool = False,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 pad_small_map: Optional[bool] = None,
                 norm_cfg: Optional[dict] = dict(type='LN'),
                 stage_cfgs: Union[dict, Sequence[dict], None] = None,
                 patch_cfg: Optional[dict] = None,
                 gaug: bool = True,
                 prr: Optional[bool] = None,
                 init_cfg: Optional[dict] = None,
                 *,
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
        # Arguments only mmseg's SwinTransformer has: any of them selects its conventions.
        mmseg_args = {
            name: value
            for name, value in dict(
                pretrain_img_size=pretrain_img_size, embed_dims=embed_dims, depths=depths,
                num_heads=num_heads, strides=strides, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                qk_scale=qk_scale, patch_norm=patch_norm, attn_drop_rate=attn_drop_rate,
                act_cfg=act_cfg).items() if value is not None
        }
        self.mmseg_interface = bool(mmseg_args) or pretrained is not None
        if self.mmseg_interface:
            given = dict(arch=arch, img_size=img_size, stage_cfgs=stage_cfgs,
                         patch_cfg=patch_cfg, pad_small_map=pad_small_map)
            clash = [name for name, value in given.items() if value is not None]
            if out_after_downsample:
                clash.append('out_after_downsample')
            if clash:
                raise ValueError(
                    f"LocAtSwin got mmseg's SwinTransformer arguments ({sorted(mmseg_args)}"
                    f"{', pretrained' if pretrained is not None else ''}) and mmpretrain's "
                    f'({clash}): use one interface.')
            if pretrained is not None:
                if init_cfg is not None:
                    raise ValueError('init_cfg and pretrained cannot be set together')
                init_cfg = dict(type='Pretrained', checkpoint=pretrained)
            translated = _mmseg_to_mmpretrain(
                patch_size=patch_size, drop_rate=drop_rate, norm_cfg=norm_cfg, **mmseg_args)
            arch, img_size = translated['arch'], translated['img_size']
            stage_cfgs, patch_cfg = translated['stage_cfgs'], translated['patch_cfg']
            norm_cfg, pad_small_map = translated['norm_cfg'], translated['pad_small_map']
            out_indices = (0, 1, 2, 3) if out_indices is None else out_indices
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        if use_abs_pos_embed:
            raise ValueError(
                'LocAtSwin has no absolute position embedding (use_abs_pos_embed=True): '
                "neither the authors' LocAtSwin nor OpenMMLab's Swin configs use one.")

        self.arch_settings = self._parse_arch('tiny' if arch is None else arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.depths = list(self.arch_settings['depths'])
        self.num_heads = list(self.arch_settings['num_heads'])
        self.num_layers = len(self.depths)
        self.out_indices = parse_out_indices((3, ) if out_indices is None else out_indices,
                                             self.num_layers, 'stages')
        self.out_after_downsample = out_after_downsample
        self.window_size = window_size
        self.norm_eval = norm_eval
        self.gaug = gaug
        self.prr = (not self.mmseg_interface) if prr is None else prr
        last = self.num_layers - 1
        if self.prr and norm_cfg is None and last in self.out_indices:
            raise ValueError('prr=True refines the final norm\'s output, and norm_cfg=None '
                             'leaves none: set prr=False for features before the norm.')

        self.patch_embed = PatchEmbed(**{
            'in_channels': in_channels,
            'input_size': 224 if img_size is None else img_size,
            'embed_dims': self.embed_dims,
            'conv_type': 'Conv2d',
            'kernel_size': patch_size,
            'stride': patch_size,
            'norm_cfg': dict(type='LN'),
            **(patch_cfg or {})
        })
        self.patch_resolution = self.patch_embed.init_out_size
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        self._register_load_state_dict_pre_hook(self._adapt_state_dict)

        # On the CPU whatever the default device (e.g. 'meta' while sizing a model).
        rates = torch.linspace(0, drop_path_rate, sum(self.depths), device='cpu').tolist()
        self.stages = nn.ModuleList()
        widths = [self.embed_dims]
        for i, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
            if isinstance(stage_cfgs, Sequence):
                extra = copy.deepcopy(stage_cfgs[i])
            else:
                extra = copy.deepcopy(stage_cfgs or {})
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
                **extra
            })
            self.stages.append(stage)
            widths.append(stage.out_channels)
        self.num_features = widths[1:] if out_after_downsample else widths[:-1]
        for i in self.out_indices:
            norm = nn.Identity() if norm_cfg is None else build_norm_layer(
                norm_cfg, self.num_features[i])[1]
            self.add_module(f'norm{i}', norm)

        self.frozen_stages = frozen_stages
        # mmpretrain freezes stages 0..k, mmseg the first k.
        self.num_frozen_stages = (max(frozen_stages, 0) if self.mmseg_interface else
                                  frozen_stages + 1)
        if not -1 <= frozen_stages or self.num_frozen_stages > self.num_layers:
            raise ValueError(f'frozen_stages={frozen_stages} is out of range for '
                             f'{self.num_layers} stages')
        self._freeze_stages()

    # ------------------------------------------------------------------ construction helpers
    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'Unknown arch {arch!r}: choose from {sorted(self.arch_zoo)} '
                                 'or pass a dict')
            return copy.deepcopy(self.arch_zoo[arch.lower()])
        needed = {'embed_dims', 'depths', 'num_heads'}
        if not isinstance(arch, dict) or set(arch) != needed:
            raise ValueError(f'A custom arch must be a dict with keys {sorted(needed)}')
        if len(arch['depths']) != len(arch['num_heads']):
            raise ValueError('arch depths and num_heads need one entry per stage')
        return dict(arch)

    def init_weights(self) -> None:
        """Loads ``init_cfg``'s checkpoint, or initialises as timm's Swin does."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(
                self.init_cfg['checkpoint'],
                prefix=self.init_cfg.get('prefix'),
                map_location=self.init_cfg.get('map_location', 'cpu'),
                strict=self.init_cfg.get('strict', True))
            self._is_init = True
            return
        super().init_weights()
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, WindowLocAtAttention):
                trunc_normal_(m.relative_position_bias_table, std=.02)

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu',
                        strict: bool = True) -> None:
        """Loads backbone weights from a checkpoint file.

        Args:
            checkpoint (str): Path or URL (anything mmengine's loaders read).
            prefix (str, optional): Where the backbone sits in the checkpoint; by default
                ``backbone.`` when present, else the whole state dict.
            map_location (str): Device to load tensors to.
            strict (bool): Raise on keys that do not fit (classifier and output norms the
                backbone lacks excused); with False they are only logged.
        """
        state_dict = read_backbone_state_dict(checkpoint, prefix, map_location)
        if is_timm_swin_layout(state_dict):
            state_dict = convert_timm_swin_state_dict(state_dict)
        state_dict = drop_stale_buffers(state_dict)
        check_fit(self.state_dict(), state_dict, checkpoint, swin_mismatch,
                  describe_swin_mismatch, strict)
        own = self.state_dict()
        self.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)
        MMLogger.get_current_instance().info(f'LocAtSwin: loaded {checkpoint}')

    def _adapt_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args,
                          **kwargs) -> None:
        """Load pre-hook: reads the authors' (timm) layout, drops stored shift masks and
        supplies the constant relative-position index where a checkpoint lacks it."""
        own = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        if is_timm_swin_layout(own):
            for key, value in convert_timm_swin_state_dict(
                    {k: state_dict.pop(full) for k, full in own.items()}).items():
                state_dict[prefix + key] = value
        for key in [k for k in state_dict if k.startswith(prefix) and k.endswith('attn_mask')]:
            del state_dict[key]
        for name, buffer in self.named_buffers():
            if name.endswith('relative_position_index') and prefix + name not in state_dict:
                state_dict[prefix + name] = buffer

    # ------------------------------------------------------------------ training state
    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed, self.drop_after_pos]
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
        x, hw = self.patch_embed(x)
        x = self.drop_after_pos(x)
        outs = []
        last = self.num_layers - 1
        for i, stage in enumerate(self.stages):
            x, hw = stage(x, hw, do_downsample=self.out_after_downsample)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                if self.prr and i == last:
                    out = parameter_free_attention(out, self.num_heads[-1])
                outs.append(out.transpose(1, 2).reshape(out.shape[0], -1, *hw).contiguous())
            if stage.downsample is not None and not self.out_after_downsample:
                x, hw = stage.downsample(x, hw)
        return outs if self.mmseg_interface else tuple(outs)
