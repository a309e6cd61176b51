"""Builds, or finds already built, the fused CPU attention kernels with torch alone imported.

``make env`` runs it on a second core while pip installs the toolboxes: the kernels need only
torch, ninja and a C++ compiler, so the first test or training run does not wait for the
compiler. Prints the extension's name. Exit status 1 when it could not be built: the package
then takes the ATen path, which is exact too (``locat_mm/ops/cpu/__init__.py``).
"""
import importlib.util
import os.path as osp
import sys
from types import ModuleType

OPS_CPU = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'locat_mm', 'ops', 'cpu',
                   '__init__.py')


def load_ops_cpu() -> ModuleType:
    """``locat_mm.ops.cpu`` from its file, without importing ``locat_mm`` (and its toolboxes)."""
    spec = importlib.util.spec_from_file_location('locat_mm_ops_cpu', OPS_CPU)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    import torch
    ops_cpu = load_ops_cpu()
    if ops_cpu.disabled():
        print('LOCAT_FUSED_CPU=0: the fused CPU kernels are not used, nothing to build')
        return 0
    if ops_cpu.fused_cpu_ops(torch.zeros(1)) is None:
        print('the fused CPU kernels could not be built (see the warning above); the ATen path '
              'will be used', file=sys.stderr)
        return 1
    print(ops_cpu.extension_name())
    return 0


if __name__ == '__main__':
    sys.exit(main())
