"""GAug attention kernels in plain torch (no OpenMMLab import): the dense formula (the oracle),
the exact factored path with its fused CPU passes, and FlexAttention for CUDA."""
from .cuda import flex_biased_attention, flex_supported
from .dense import dense_biased_attention, pad_prefix
from .factored import factored_biased_attention
from .gaussian import GaussianTerms, gaug_eps

__all__ = [
    'dense_biased_attention', 'factored_biased_attention', 'flex_biased_attention',
    'flex_supported', 'pad_prefix', 'GaussianTerms', 'gaug_eps'
]
