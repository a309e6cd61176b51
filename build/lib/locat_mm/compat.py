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


def cpu_amp_optim_wrapper() -> None:
    """Lets mmengine's ``AmpOptimWrapper`` (``--amp``) train in bfloat16 on a CPU-only machine.

    mmengine 0.10.7 asserts an accelerator in ``AmpOptimWrapper.__init__``, although its
    ``autocast`` runs CPU bfloat16. Without one, the wrapper is built with the loss scaler
    off (bfloat16 has float32's range: nothing to scale) and any other dtype is refused with
    a clear error. A no-op where CUDA is available.
    """
    from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                                 is_npu_available)
    from mmengine.optim.optimizer import amp_optimizer_wrapper as module
    from mmengine.optim.optimizer.optimizer_wrapper import OptimWrapper

    wrapper = module.AmpOptimWrapper
    if getattr(wrapper.__init__, '_locat_cpu', False) or any(
            available() for available in (is_cuda_available, is_npu_available,
                                          is_mlu_available, is_musa_available)):
        return

    def __init__(self, loss_scale='dynamic', dtype=None, use_fsdp: bool = False, **kwargs):
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper(dtype={dtype!r}) needs a GPU; on CPU, mixed '
                             "precision is bfloat16: set optim_wrapper.dtype='bfloat16'.")
        if use_fsdp:
            raise ValueError('AmpOptimWrapper(use_fsdp=True) needs GPUs.')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16

    __init__._locat_cpu = True
    wrapper.__init__ = __init__


def apply_all() -> None:
    """Applies every fix above."""
    cpu_distributed_set_device()
    cpu_amp_optim_wrapper()
