"""LocAtViT's arguments as data: mmpretrain's ViT arch table and each toolbox's conventions."""
import copy
from typing import Mapping, Optional, Union

from .interface import ArgumentError, Conventions

# mmpretrain 1.2's VisionTransformer.arch_zoo (names and meaning there), plus 't'/'tiny'
# (= 'deit-tiny', the paper's T).
ARCH_ZOO = {
    **dict.fromkeys(['s', 'small'], dict(
        embed_dims=768, num_layers=8, num_heads=8, feedforward_channels=768 * 3)),
    **dict.fromkeys(['b', 'base'], dict(
        embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)),
    **dict.fromkeys(['l', 'large'], dict(
        embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096)),
    **dict.fromkeys(['h', 'huge'], dict(
        embed_dims=1280, num_layers=32, num_heads=16, feedforward_channels=5120)),
    **dict.fromkeys(['eva-g', 'eva-giant'], dict(
        embed_dims=1408, num_layers=40, num_heads=16, feedforward_channels=6144)),
    **dict.fromkeys(['t', 'tiny', 'deit-t', 'deit-tiny'], dict(
        embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=192 * 4)),
    **dict.fromkeys(['deit-s', 'deit-small', 'dinov2-s', 'dinov2-small'], dict(
        embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=384 * 4)),
    **dict.fromkeys(['deit-b', 'deit-base'], dict(
        embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=768 * 4)),
    **dict.fromkeys(['dinov2-g', 'dinov2-giant'], dict(
        embed_dims=1536, num_layers=40, num_heads=24, feedforward_channels=6144)),
}
ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'feedforward_channels')
# The names of LocAtRoPEViT's and LocAtJumbo's archs (the authors' tiny, small and base, patch
# 16, MLP ratio 4), each the ARCH_ZOO entry it means: DeiT's sizes (mmpretrain's own 's' is
# another model).
FAMILY_ARCH_NAMES = {
    **dict.fromkeys(['t', 'tiny'], 'deit-tiny'),
    **dict.fromkeys(['s', 'small'], 'deit-small'),
    **dict.fromkeys(['b', 'base'], 'deit-base'),
}

# mmseg's VisionTransformer architecture when a config leaves it out.
MMSEG_ARCH = dict(embed_dims=768, num_layers=12, num_heads=12, mlp_ratio=4)

CONVENTIONS = {
    # ``pretrained``, ``with_cp`` and ``attn_drop_rate`` mean the same in both and mark
    # nothing (mmseg's EncoderDecoder injects ``pretrained`` into any backbone).
    'mmpretrain': Conventions(
        'mmpretrain', ('arch', 'out_type', 'layer_scale_init_value', 'patch_cfg', 'layer_cfgs'),
        dict(norm_cfg=dict(type='LN', eps=1e-6), final_norm=True, out_type='cls_token')),
    'mmseg': Conventions(
        'mmseg', ('embed_dims', 'num_layers', 'num_heads', 'mlp_ratio', 'patch_pad',
                  'patch_bias', 'patch_norm', 'num_fcs', 'act_cfg', 'norm_eval',
                  'output_cls_token', 'frozen_exclude', 'out_origin'),
        dict(norm_cfg=dict(type='LN'), final_norm=False, out_type='featmap')),
}


def parse_vit_arch(arch: Union[str, dict], names: Optional[Mapping[str, str]] = None) -> dict:
    """An mmpretrain ``arch`` (a name of :data:`ARCH_ZOO` or a dict with
    :data:`ARCH_KEYS`) as a dict of those keys.

    Args:
        arch (str | dict): The name (any case) or the dict.
        names (Mapping[str, str], optional): The names accepted, each mapped to the ARCH_ZOO
            entry it means (e.g. :data:`FAMILY_ARCH_NAMES`); default ARCH_ZOO's own.

    Raises:
        ArgumentError: An unknown name, or a dict without every key (mmpretrain asserts).
    """
    if isinstance(arch, str):
        entry = (names or {name: name for name in ARCH_ZOO}).get(arch.lower())
        if entry is None:
            raise ArgumentError(
                f'Arch {arch!r} is not in default archs {sorted(names or ARCH_ZOO)}: choose '
                'one, or pass a dict with ' + ', '.join(ARCH_KEYS))
        return copy.deepcopy(ARCH_ZOO[entry])
    if not isinstance(arch, dict) or not set(ARCH_KEYS) <= set(arch):
        raise ArgumentError(f'Custom arch needs a dict with keys {list(ARCH_KEYS)}, got {arch!r}')
    return dict(arch)


def translate_mmseg_vit(arch: Optional[Union[str, dict]] = None,
                        embed_dims: Optional[int] = None,
                        num_layers: Optional[int] = None,
                        num_heads: Optional[int] = None,
                        mlp_ratio: Optional[float] = None) -> Optional[Union[str, dict]]:
    """mmseg's architecture arguments as mmpretrain's ``arch`` (a dict), or ``arch`` itself
    when none is given. Missing mmseg values take mmseg's defaults (:data:`MMSEG_ARCH`).

    Raises:
        ArgumentError: ``arch`` and mmseg's arguments both given.
    """
    seg = {k: v for k, v in dict(embed_dims=embed_dims, num_layers=num_layers,
                                 num_heads=num_heads, mlp_ratio=mlp_ratio).items()
           if v is not None}
    if arch is not None:
        if seg:
            raise ArgumentError(
                f'arch={arch!r} and {", ".join(seg)} both define the architecture: give arch '
                '(mmpretrain) or embed_dims/num_layers/num_heads/mlp_ratio (mmseg).')
        return arch
    settings = {**MMSEG_ARCH, **seg}
    return dict(embed_dims=settings['embed_dims'], num_layers=settings['num_layers'],
                num_heads=settings['num_heads'],
                feedforward_channels=int(settings['mlp_ratio'] * settings['embed_dims']))
