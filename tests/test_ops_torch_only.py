"""The GAug kernels and layers (``locat_mm/ops``, ``layers/gaug.py``, ``layers/attention.py``)
import and run with torch alone: no OpenMMLab package is loaded."""
import os.path as osp
import subprocess
import sys
import textwrap

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_ops_and_attention_layers_need_only_torch():
    code = textwrap.dedent(f"""
        import sys, types
        for name in ('mmengine', 'mmcv', 'mmpretrain', 'mmseg'):
            sys.modules[name] = None  # as if not installed
        # Bare parent packages: only the modules under test run their imports.
        for name, sub in (('locat_mm', ''), ('locat_mm.layers', 'layers')):
            pkg = types.ModuleType(name)
            pkg.__path__ = [{REPO!r} + '/locat_mm/' + sub]
            sys.modules[name] = pkg
        import torch
        import locat_mm.ops
        from locat_mm.layers.attention import LocAtAttention
        from locat_mm.layers.patch_embed import resize_pos_embed
        layer = LocAtAttention(32, 2, (4, 4))
        x = torch.randn(2, 1 + 5 * 6, 32, requires_grad=True)
        layer(x, (5, 6), 1).sum().backward()
        assert resize_pos_embed(torch.randn(1, 17, 8), (4, 4), (5, 6)).shape == (1, 31, 8)
        loaded = {{m.split('.')[0] for m, v in sys.modules.items() if v is not None}}
        assert not loaded & {{'mmengine', 'mmcv', 'mmpretrain', 'mmseg'}}, loaded
        print('ok')
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')
