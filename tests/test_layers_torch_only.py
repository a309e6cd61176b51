"""``locat_mm.layers`` (and the ops under it) import and run with torch alone, LocAtSwin's
blocks included.

The GPU check and exporters use the layers without OpenMMLab; a subprocess hides every
OpenMMLab package and imports the layers without running ``locat_mm/__init__.py``.
"""
import subprocess
import sys

from conftest import REPO

SCRIPT = r'''
import importlib.abc, sys, types
BLOCKED = ('mmcv', 'mmengine', 'mmpretrain', 'mmseg')

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is hidden: the layers must not need it')

sys.meta_path.insert(0, Block())
package = types.ModuleType('locat_mm')
package.__path__ = [sys.argv[1] + '/locat_mm']
sys.modules['locat_mm'] = package
import torch
from locat_mm.layers import LocAtEncoderLayer, PadPatchEmbed, PatchRepresentationRefinement
embed = PadPatchEmbed(3, 32, 16)
block = LocAtEncoderLayer(32, 2, 64, base_grid=(2, 2), layer_scale_init_value=0.1).eval()
with torch.no_grad():
    tokens, grid = embed(torch.randn(1, 3, 40, 40))
    tokens = torch.cat([torch.zeros(1, 1, 32), tokens], dim=1)
    out = PatchRepresentationRefinement(2)(block(tokens, grid, 1))
assert out.shape == (1, 10, 32) and block.attn.gaug is not None
from locat_mm.layers.swin_blocks import LocAtSwinStage
stage = LocAtSwinStage(16, depth=2, num_heads=2, window_size=4, downsample=True).eval()
with torch.no_grad():
    merged, hw = stage(torch.randn(1, 8 * 8, 16), (8, 8))
assert merged.shape == (1, 16, 32) and hw == (4, 4)
assert not [m for m in sys.modules if m.split('.')[0] in BLOCKED]
print('ok')
'''


def test_layers_import_and_run_without_openmmlab():
    result = subprocess.run([sys.executable, '-c', SCRIPT, REPO], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr
