"""LocAtSwin's arguments as data: mmpretrain's Swin arch table, each toolbox's conventions,
mmseg's arguments in mmpretrain's terms, and stage configs as the torch-only layers take them."""
import copy
from typing import Optional, Sequence, Tuple, Union

from .interface import (ArgumentError, Conventions, act_builder, norm_builder, parse_size)

# mmpretrain 1.2's SwinTransformer.arch_zoo.
ARCH_ZOO = {
    **dict.fromkeys(['t', 'tiny'], dict(
        embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])),
    **dict.fromkeys(['s', 'small'], dict(
        embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24])),
    **dict.fromkeys(['b', 'base'], dict(
        embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])),
    **dict.fromkeys(['l', 'large'], dict(
        embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48])),
}
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')

CONVENTIONS = {
    # ``pretrained``, ``use_abs_pos_embed``, ``with_cp`` and the other shared arguments mark
    # nothing.
    'mmpretrain': Conventions(
        'mmpretrain', ('arch', 'img_size', 'out_after_downsample', 'interpolate_mode',
                       'pad_small_map', 'stage_cfgs', 'patch_cfg'),
        # Stage outputs: the last; frozen_stages=k freezes stages 0..k; PRR on.
        dict(out_indices=(3, ), frozen_offset=1, prr=True)),
    'mmseg': Conventions(
        'mmseg', ('pretrain_img_size', 'embed_dims', 'depths', 'num_heads', 'strides',
                  'mlp_ratio', 'qkv_bias', 'qk_scale', 'patch_norm', 'attn_drop_rate',
                  'act_cfg'),
        # Every stage's output, a list; frozen_stages=k freezes k stages; PRR off.
        dict(out_indices=(0, 1, 2, 3), frozen_offset=0, prr=False)),
}


def parse_swin_arch(arch: Union[str, dict]) -> dict:
    """An mmpretrain Swin ``arch`` (a name of :data:`ARCH_ZOO` or a dict of exactly
    :data:`ARCH_KEYS`) as that dict.

    Raises:
        ArgumentError: An unknown name, a dict of other keys, or stage lists of two lengths.
    """
    if isinstance(arch, str):
        if arch.lower() not in ARCH_ZOO:
            raise ArgumentError(f'Arch {arch!r} is not in default archs {sorted(ARCH_ZOO)}: '
                                'choose one, or pass a dict with ' + ', '.join(ARCH_KEYS))
        return copy.deepcopy(ARCH_ZOO[arch.lower()])
    if not isinstance(arch, dict) or set(arch) != set(ARCH_KEYS):
        raise ArgumentError(f'Custom arch needs a dict with keys {list(ARCH_KEYS)}, got {arch!r}')
    if len(arch['depths']) != len(arch['num_heads']):
        raise ArgumentError('arch depths and num_heads need one entry per stage')
    return copy.deepcopy(arch)


def translate_mmseg_swin(embed_dims: int = 96,
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
    """mmseg's ``SwinTransformer`` arguments (its defaults) as mmpretrain's: ``arch``,
    ``img_size``, ``stage_cfgs``, ``patch_cfg``, ``norm_cfg``, ``pad_small_map``.

    mmseg's ``norm_cfg`` is every norm's (patch embedding and merging only with
    ``patch_norm``); its ``drop_rate`` also drops after the attention projection and in the MLP.

    Raises:
        ArgumentError: ``strides[0] != patch_size`` (mmseg's patch embedding does not
            overlap), or a ``pretrain_img_size`` of more than two values.
    """
    if strides[0] != patch_size:
        raise ArgumentError(f'strides[0] ({strides[0]}) must equal patch_size ({patch_size}): '
                            'Use non-overlapping patch embed.')
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
        img_size=parse_size('pretrain_img_size', pretrain_img_size),
        stage_cfgs=stage_cfgs,
        patch_cfg=dict(stride=strides[0], norm_cfg=merge_norm),
        norm_cfg=norm_cfg,
        pad_small_map=True)


def stage_layer_kwargs(stage_cfg: dict) -> dict:
    """An mmpretrain ``stage_cfgs`` entry (mmcv registry configs for norms and activations)
    as the keyword arguments of the torch-only :class:`~locat_mm.layers.swin_blocks.
    LocAtSwinStage` (builders instead of configs)."""
    stage_cfg = copy.deepcopy(stage_cfg)
    blocks = stage_cfg.get('block_cfgs')
    if blocks is not None:
        stage_cfg['block_cfgs'] = ([_block_kwargs(b) for b in blocks] if isinstance(
            blocks, Sequence) else _block_kwargs(blocks))
    downsample = stage_cfg.get('downsample_cfg')
    if downsample is not None:
        downsample = dict(downsample)
        if downsample.get('stride', 2) is None:
            downsample.pop('stride')
        if 'norm_cfg' in downsample:
            downsample['norm_layer'] = norm_builder(downsample.pop('norm_cfg'))
        stage_cfg['downsample_cfg'] = downsample
    return stage_cfg


def _block_kwargs(block_cfg: dict) -> dict:
    block_cfg = dict(block_cfg)
    if 'norm_cfg' in block_cfg:
        block_cfg['norm_layer'] = norm_builder(block_cfg.pop('norm_cfg') or dict(type='LN'))
    ffn = dict(block_cfg.get('ffn_cfgs') or {})
    if 'act_cfg' in ffn:
        ffn['act_layer'] = act_builder(ffn.pop('act_cfg'))
    block_cfg['ffn_cfgs'] = ffn
    return block_cfg
