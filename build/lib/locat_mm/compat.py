"""Every workaround this project needs for the OpenMMLab 2.x stack on today's torch and numpy.

Each fix is a function that is safe to call twice and is applied once, when ``locat_mm`` is
imported (configs do that through ``custom_imports=dict(imports=['locat_mm'])``, before the
Runner loads or wraps anything). Each has a test in ``tests/test_compat.py`` that fails
without it. Remove a fix once the pinned upstream release carries it.

Checkpoint loading is not patched here: :mod:`locat_mm.checkpoint` reads every checkpoint
with ``weights_only=True`` and allows what mmengine's own checkpoints need only while loading.
"""
import torch


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
    cpu_distributed_set_device()
