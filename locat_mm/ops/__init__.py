"""GAug attention in plain torch (no OpenMMLab import): the registered operator
``locat::gaug_attention`` and its kernels (the dense formula, the exact chunked factored
passes with their fused CPU code, FlexAttention for CUDA)."""
from .cuda import flex_biased_attention, flex_supported
from .dense import dense_biased_attention, dense_gaug_attention, gaussian_bias, pad_prefix
from .gaug_attention import DECOMPOSITIONS, gaug_attention
from .gaussian import GaussianTerms, factor_product, gaug_eps

__all__ = [
    'DECOMPOSITIONS', 'dense_biased_attention', 'dense_gaug_attention', 'factor_product',
    'flex_biased_attention', 'flex_supported', 'gaug_attention', 'gaussian_bias', 'pad_prefix',
    'GaussianTerms', 'gaug_eps'
]
