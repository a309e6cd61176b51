"""Loads the fused CPU kernels of the GAug attention (``gaug_cpu.cpp``).

The extension is compiled with the machine's C++ compiler on first use (about 40 s; one line is
printed when it starts) and cached by torch in ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``) under a name that carries a hash of the source, so checkouts
with different sources sharing that folder never load each other's build. Where it
cannot be built, :func:`fused_cpu_ops` returns None and the attention uses equivalent ATen ops;
``LOCAT_FUSED_CPU=0`` chooses that path deliberately.
"""
import hashlib
import os
import os.path as osp
import sys
import warnings
from functools import lru_cache
from types import ModuleType
from typing import Optional

from torch import Tensor

_SOURCE = osp.join(osp.dirname(__file__), 'gaug_cpu.cpp')
import torch

# AVX2/FMA code where torch itself dispatches to AVX2 or wider: eight exponentials at a time.
# -ffast-math for reassociated, vectorised sums, but with IEEE NaN and infinity kept
# (-fno-finite-math-only): a NaN in one image must give NaN in that image's output, never a
# finite number (tests/test_nonfinite.py).
_FLAGS = ['-O3', '-ffast-math', '-fno-finite-math-only', '-fopenmp-simd'] + (
    ['-mavx2', '-mfma'] if torch.backends.cpu.get_cpu_capability() in ('AVX2', 'AVX512') else [])


def extension_name() -> str:
    """``locat_gaug_cpu_<hash>``: the hash covers the source and the compiler flags."""
    with open(_SOURCE, 'rb') as f:
        digest = hashlib.sha256(f.read() + ' '.join(_FLAGS).encode()).hexdigest()
    return f'locat_gaug_cpu_{digest[:12]}'


def _is_built(name: str) -> bool:
    from torch.utils.cpp_extension import _get_build_directory
    build_dir = _get_build_directory(name, verbose=False)
    return any(f.startswith(name) and f.endswith('.so') for f in os.listdir(build_dir))


def disabled() -> bool:
    """Whether ``LOCAT_FUSED_CPU=0`` chose the ATen path deliberately."""
    return os.environ.get('LOCAT_FUSED_CPU', '1') == '0'


@lru_cache(maxsize=1)
def _load() -> Optional[ModuleType]:
    if disabled():
        return None
    try:
        from torch.utils.cpp_extension import load
        name = extension_name()
        if not _is_built(name):
            print(f'LocAtViT: building the fused CPU attention kernels ({name}, about 40 s, '
                  'once per source version)...', file=sys.stderr, flush=True)
        return load(name, [_SOURCE], extra_cflags=_FLAGS, verbose=False)
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
