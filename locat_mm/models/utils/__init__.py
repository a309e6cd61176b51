from .attention import (dense_biased_attention, factored_biased_attention,
                        parameter_free_attention)
from .embed import PadPatchEmbed, resize_pos_embed
from .gaug import GaussianAugmentation
from .transformer import LocAtAttention, LocAtEncoderLayer

__all__ = [
    'dense_biased_attention', 'factored_biased_attention', 'parameter_free_attention',
    'PadPatchEmbed', 'resize_pos_embed', 'GaussianAugmentation', 'LocAtAttention',
    'LocAtEncoderLayer'
]
