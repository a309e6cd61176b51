"""Training hooks (registered in mmengine's root registry, so every toolbox finds them) and
the attention FLOP handles for mmengine's complexity analysis."""
from .flops import attention_flop_jit  # noqa: F401
from .checkpoint_fit_hook import CheckpointFitHook  # noqa: F401
from .hooks import AttentionProbe, GAugStatsHook  # noqa: F401
from .rng_hook import RNGStateHook  # noqa: F401
