"""mmsegmentation's own backbone tests, run against LocAtViT and LocAtSwin.

The mmsegmentation 1.2 wheel installs its tests (``site-packages/tests``). Each test function
of ``test_vit.py`` and ``test_swin.py`` that exercises the backbone class runs here unchanged,
with only the class it imported swapped at run time for ours (``gaug=False, prr=False``) and
mmseg's default scope set, as its Runner sets it (without it, a call with no mmseg-only
argument, such as ``VisionTransformer()``, gets mmpretrain's conventions: see the README's
drop-in section). Nothing is copied from those files.
"""
import gc
import importlib
import os.path as osp

import pytest
from mmengine.registry import DefaultScope

import locat_mm  # noqa: F401  (registers the backbones)
from locat_mm.models import LocAtSwin, LocAtViT


class PlainViT(LocAtViT):
    """LocAtViT with the method off: the class mmseg's VisionTransformer tests expect."""

    def __init__(self, *args, **kwargs) -> None:
        # The models the test dropped hold reference cycles (their load hooks): free them now
        # so that the test's peak memory is that of one ViT-B, as with mmseg's class.
        gc.collect()
        super().__init__(*args, gaug=False, prr=False, **kwargs)


class PlainSwin(LocAtSwin):
    """LocAtSwin with the method off."""

    def __init__(self, *args, **kwargs) -> None:
        gc.collect()
        super().__init__(*args, gaug=False, prr=False, **kwargs)


def upstream_test_module(name: str):
    """``tests.test_models.test_backbones.<name>`` as the mmseg wheel installed it."""
    try:
        module = importlib.import_module(f'tests.test_models.test_backbones.{name}')
    except ImportError as err:
        pytest.skip(f'mmsegmentation\'s tests are not installed ({err})')
    if 'site-packages' not in osp.abspath(module.__file__):
        pytest.skip(f'tests.test_models resolved to {module.__file__}, not the wheel\'s')
    return module


@pytest.mark.parametrize('module_name,class_name,swapped,test_name', [
    ('test_vit', 'VisionTransformer', PlainViT, 'test_vit_backbone'),
    ('test_vit', 'VisionTransformer', PlainViT, 'test_vit_init'),
    ('test_swin', 'SwinTransformer', PlainSwin, 'test_swin_transformer'),
])
def test_mmseg_backbone_tests_pass(module_name, class_name, swapped, test_name, monkeypatch):
    module = upstream_test_module(module_name)
    monkeypatch.setattr(module, class_name, swapped)
    with DefaultScope.overwrite_default_scope('mmseg'):
        getattr(module, test_name)()
