"""Loads the fused CPU passes of the factored GAug attention (``gaug_cpu.cpp``).

The extension is compiled with the machine's C++ compiler on first use (about a minute) and
cached by torch in ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). Where it
cannot be built, :func:`fused_cpu_ops` returns None and the attention uses equivalent ATen ops;
``LOCAT_FUSED_CPU=0`` chooses that path deliberately.
"""
import os
import os.path as osp
import warnings
from functools import lru_cache
from types import ModuleType
from typing import Optional

from torch import Tensor

_SOURCE = osp.join(osp.dirname(__file__), 'gaug_cpu.cpp')


@lru_cache(maxsize=1)
def _load() -> Optional[ModuleType]:
    if os.environ.get('LOCAT_FUSED_CPU', '1') == '0':
        return None
    try:
        from torch.utils.cpp_extension import load
        return load('locat_gaug_cpu', [_SOURCE],
                    extra_cflags=['-O3', '-ffast-math', '-fopenmp-simd'],
                    extra_ldflags=['-lmvec'], verbose=False)
    except Exception as err:  # no compiler, no headers, ...: the ATen path is exact too
        warnings.warn(f'LocAtViT: fused CPU attention passes unavailable ({err}); using the '
                      'slower ATen path. Set LOCAT_FUSED_CPU=0 to silence this.')
        return None


def fused_cpu_ops(*tensors: Tensor) -> Optional[ModuleType]:
    """The compiled passes, if they apply to these tensors (CPU, float32), else None."""
    if not all(t.device.type == 'cpu' and t.dtype.is_floating_point and t.dtype.itemsize == 4
               for t in tensors):
        return None
    return _load()
