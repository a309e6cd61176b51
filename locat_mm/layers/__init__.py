"""LocAtViT's building blocks as plain torch modules, each citing its SPEC section."""
from .attention import LocAtAttention
from .blocks import FFN, DropPath, LocAtEncoderLayer
from .gaug import GaussianAugmentation
from .jumbo import JumboEncoderLayer
from .layer_scale import LayerScale
from .patch_embed import PadPatchEmbed, resize_pos_embed, to_2tuple
from .prr import PatchRepresentationRefinement, parameter_free_attention
from .rope import MixedRoPE, RoPELocAtAttention

__all__ = [
    'LocAtAttention', 'LocAtEncoderLayer', 'FFN', 'DropPath', 'LayerScale',
    'GaussianAugmentation', 'PadPatchEmbed', 'resize_pos_embed', 'to_2tuple',
    'PatchRepresentationRefinement', 'parameter_free_attention', 'MixedRoPE',
    'RoPELocAtAttention', 'JumboEncoderLayer'
]

