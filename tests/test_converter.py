"""tools/model_converters/locat_timm2mm.py and ``convert_timm_classifier``."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO

from locat_mm.models.ckpt_convert import convert_timm_classifier

TOOL = osp.join(REPO, 'tools', 'model_converters', 'locat_timm2mm.py')


def fixture_classifier(num_classes: int = 10):
    """The ImageClassifier that matches the reference fixture's config (SPEC fixture)."""
    from mmpretrain.models import ImageClassifier
    return ImageClassifier(
        backbone=dict(
            type='LocAtViT',
            arch=dict(embed_dims=128, num_layers=3, num_heads=2, feedforward_channels=512),
            out_type='cls_token'),
        head=dict(type='VisionTransformerClsHead', num_classes=num_classes, in_channels=128))


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_classifier_keys_and_rejections(reference_fixture):
    converted = convert_timm_classifier(reference_fixture['state_dict'])
    assert set(converted) == set(fixture_classifier().state_dict())
    assert converted['head.layers.head.weight'] is reference_fixture['state_dict']['head.weight']
    with pytest.raises(ValueError, match='timm'):
        convert_timm_classifier({'backbone.layers.0.ln1.weight': torch.ones(1)})
    foreign = dict(reference_fixture['state_dict'])
    foreign['blocks.0.attn.q_norm.weight'] = torch.ones(64)
    with pytest.raises(ValueError, match='q_norm'):
        convert_timm_classifier(foreign)


def test_tool_reproduces_reference_logits(reference_fixture, tmp_path):
    src = tmp_path / 'authors.pth'
    # A checkpoint as the authors' training saves it (timm: {'model': state_dict, ...}).
    torch.save({'model': reference_fixture['state_dict'], 'epoch': 299}, src)
    before = src.read_bytes()
    dst = tmp_path / 'out' / 'locat_mm.pth'
    result = run_tool(str(src), str(dst))
    assert result.returncode == 0, result.stderr
    assert src.read_bytes() == before
    assert not [f for f in os.listdir(dst.parent) if f.startswith('.locat_timm2mm_')]

    saved = torch.load(dst, weights_only=False)
    assert saved['meta']['gaug'] and saved['meta']['num_classes'] == 10
    assert saved['meta']['num_layers'] == 3 and saved['meta']['embed_dims'] == 128
    model = fixture_classifier().eval()
    model.load_state_dict(saved['state_dict'], strict=True)
    with torch.no_grad():
        for case in reference_fixture['cases']:
            # Inputs are already normalised: bypass the data preprocessor.
            logits = model(case['input'], mode='tensor')
            torch.testing.assert_close(logits, case['logits'], atol=1e-5, rtol=0)


def test_tool_refuses_bad_input(reference_fixture, tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location('locat_timm2mm', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)  # in-process: the CLI itself is run above
    src = tmp_path / 'authors.pth'
    torch.save(reference_fixture['state_dict'], src)
    before = src.read_bytes()
    monkeypatch.setattr(sys, 'argv', [TOOL, str(src), str(src)])
    assert tool.main() == 1 and 'refusing to overwrite' in capsys.readouterr().err
    assert src.read_bytes() == before

    mm = tmp_path / 'mm.pth'
    torch.save({'state_dict': fixture_classifier().state_dict()}, mm)
    monkeypatch.setattr(sys, 'argv', [TOOL, str(mm), str(tmp_path / 'again.pth')])
    assert tool.main() == 1 and 'not a LocAtViT/ViT checkpoint' in capsys.readouterr().err
    assert not (tmp_path / 'again.pth').exists()
