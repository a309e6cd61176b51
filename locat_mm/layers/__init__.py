"""LocAtViT's building blocks as torch modules, each citing its SPEC section."""
from .attention import LocAtAttention
from .blocks import LocAtEncoderLayer
from .gaug import GaussianAugmentation
from .patch_embed import PadPatchEmbed, resize_pos_embed
from .prr import parameter_free_attention

__all__ = [
    'LocAtAttention', 'LocAtEncoderLayer', 'GaussianAugmentation', 'PadPatchEmbed',
    'resize_pos_embed', 'parameter_free_attention'
]
