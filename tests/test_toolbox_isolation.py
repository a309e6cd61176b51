"""``import locat_mm`` works with only one of MMPretrain and MMSegmentation installed."""
import subprocess
import sys
import textwrap

import pytest

BUILD = {
    'mmpretrain': "dict(type='LocAtViT', arch=dict(embed_dims=32, num_layers=1, num_heads=2, "
                  "feedforward_channels=32), img_size=32)",
    'mmseg': "dict(type='LocAtViT', arch=dict(embed_dims=32, num_layers=1, num_heads=2, "
             "feedforward_channels=32), img_size=32, out_type='featmap')",
}


@pytest.mark.parametrize('present,absent', [('mmpretrain', 'mmseg'), ('mmseg', 'mmpretrain')])
def test_import_with_one_toolbox(present, absent):
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{absent!r}] = None  # as if it were not installed
        import locat_mm
        from {present}.registry import MODELS
        print(type(MODELS.build({BUILD[present]})).__name__)
        assert {absent!r} not in {{m.split('.')[0] for m, v in sys.modules.items() if v}}
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('LocAtViT')
