"""``import locat_mm`` is cheap, registers lazily, and works with torch alone."""
import subprocess
import sys
import textwrap

HIDE = "import sys\nfor _name in {names!r}:\n    sys.modules[_name] = None  # as if not installed\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=180)


def test_torch_only_node():
    """No mmengine, mmcv, mmseg or mmpretrain: the ops and the layers still work."""
    code = HIDE.format(names=['mmengine', 'mmcv', 'mmseg', 'mmpretrain']) + textwrap.dedent("""
        import torch
        import locat_mm
        from locat_mm.layers import LocAtAttention
        from locat_mm.ops import dense_biased_attention
        attn = LocAtAttention(embed_dims=16, num_heads=2, base_grid=(4, 4), gaug=True)
        out = attn(torch.randn(2, 1 + 16, 16), (4, 4), 1)
        assert torch.isfinite(out).all()
        print(tuple(out.shape), locat_mm.__version__)
        loaded = {m.split('.')[0] for m, v in sys.modules.items() if v}
        assert not loaded & {'mmengine', 'mmcv', 'mmseg', 'mmpretrain'}, loaded
    """)
    result = run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[:3] == ['(2,', '17,', '16)']


def test_import_registers_lazily():
    """``import locat_mm`` imports neither the model nor the toolboxes' model packages; the
    first registry lookup does, and finds LocAtViT, the seg head and the hooks."""
    result = run("""
        import sys
        import locat_mm
        heavy = ['locat_mm.models', 'locat_mm.seg', 'locat_mm.engine', 'mmseg.models',
                 'mmpretrain.models']
        print(sorted(m for m in heavy if m in sys.modules))
        from mmseg.registry import MODELS, HOOKS, DATASETS
        print(MODELS.get('LocAtViT').__name__, MODELS.get('LinearSegHead').__name__,
              HOOKS.get('RNGStateHook').__name__, DATASETS.get('SyntheticShapesDataset').__name__)
        from mmpretrain.registry import MODELS as PRETRAIN
        print(PRETRAIN.get('LocAtViT') is locat_mm.LocAtViT)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-3] == '[]'
    assert lines[-2] == 'LocAtViT LinearSegHead RNGStateHook SyntheticShapesDataset'
    assert lines[-1] == 'True'
