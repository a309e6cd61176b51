"""Every workaround this project needs for the OpenMMLab 2.x stack on today's torch and numpy.

Each fix is a function that is safe to call twice and is applied once, when ``locat_mm`` is
imported (configs do that through ``custom_imports=dict(imports=['locat_mm'])``, before the
Runner loads or wraps anything). Each has a test in ``tests/test_compat.py`` that fails
without it. Remove a fix once the pinned upstream release carries it.
"""
import torch


def allow_mmengine_checkpoint_globals() -> None:
    """Lets ``torch.load`` read mmengine's own checkpoints under ``weights_only=True``.

    torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 (the newest
    release) neither passes ``weights_only=False`` nor registers the objects it pickles: its
    message hub (``HistoryBuffer``) and numpy scalars and arrays. So ``Runner.resume`` and
    ``load_checkpoint`` fail with "Unsupported global". Fixed upstream in mmengine#1655, not
    yet released. Allow-listing those classes keeps the safe loader for everything else.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    core = getattr(np, '_core', None) or np.core
    safe = [
        HistoryBuffer, np.ndarray, np.dtype, getattr, core.multiarray._reconstruct,
        core.multiarray.scalar
    ]
    # numpy pickles dtypes by their per-type classes (Float64DType, ...).
    import numpy.dtypes
    safe += [
        getattr(numpy.dtypes, name) for name in dir(numpy.dtypes) if name.endswith('DType')
    ]
    torch.serialization.add_safe_globals(safe)


def cpu_distributed_set_device() -> None:
    """Makes ``torch.cuda.set_device`` a no-op on machines without CUDA.

    mmengine's ``init_dist`` (launcher ``pytorch``/``slurm``) calls it unconditionally, so
    multi-process training on CPU with the gloo backend dies before it starts. Configs for
    CPU processes must also set ``model_wrapper_cfg=dict(type='MMDistributedDataParallel',
    device_ids=None)``.
    """
    if torch.cuda.is_available() or getattr(torch.cuda.set_device, '_locat_noop', False):
        return

    def set_device(device) -> None:
        return None

    set_device._locat_noop = True
    torch.cuda.set_device = set_device


def apply_all() -> None:
    """Applies every fix above."""
    allow_mmengine_checkpoint_globals()
    cpu_distributed_set_device()
