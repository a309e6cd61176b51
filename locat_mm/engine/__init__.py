"""Training hooks and the loading-transform wrapper (registered in mmengine's root registries,
so every toolbox finds them) and the attention FLOP handles for mmengine's complexity
analysis."""
from .flops import attention_flop_jit  # noqa: F401
from .checkpoint_fit_hook import CheckpointFitHook  # noqa: F401
from .hooks import AttentionProbe, GAugStatsHook  # noqa: F401
from .load_errors import DataFileError, NameFileOnError  # noqa: F401
from .rng_hook import RNGStateHook  # noqa: F401
