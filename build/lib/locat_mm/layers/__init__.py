"""LocAtViT's building blocks as torch modules, each citing its SPEC section.

Importable with torch alone; ``LocAtEncoderLayer`` (built on mmcv's FFN and drop path) is
imported on first use, so it alone needs mmcv.
"""
from .attention import LocAtAttention
from .gaug import GaussianAugmentation
from .patch_embed import PadPatchEmbed, resize_pos_embed
from .prr import parameter_free_attention

__all__ = [
    'LocAtAttention', 'LocAtEncoderLayer', 'GaussianAugmentation', 'PadPatchEmbed',
    'resize_pos_embed', 'parameter_free_attention'
]


def __getattr__(name: str):
    if name == 'LocAtEncoderLayer':
        from .blocks import LocAtEncoderLayer
        return LocAtEncoderLayer
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
