"""Training hooks (registered in mmengine's root registry, so every toolbox finds them)."""
from .hooks import AttentionProbe, GAugStatsHook  # noqa: F401
from .rng_hook import RNGStateHook  # noqa: F401
