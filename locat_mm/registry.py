"""Registries of locat_mm, and registration into MMPretrain's and MMSegmentation's.

``locat_mm.registry.MODELS`` is a child of mmengine's root registry with scope ``locat_mm``, so
``type='locat_mm.LocAtViT'`` builds from any OpenMMLab toolbox's config (MMDetection's too).
The toolboxes' own registries get the same classes under their plain names when the toolbox
is installed, so ``type='LocAtViT'`` works in MMPretrain and MMSegmentation configs.
"""
import importlib.util

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='locat_mm', locations=['locat_mm'])


def toolbox_available(name: str) -> bool:
    """True when the OpenMMLab toolbox package ``name`` (e.g. ``'mmseg'``) is installed."""
    return importlib.util.find_spec(name) is not None


def register_everywhere(cls: type) -> type:
    """Registers a model class in locat_mm's, MMPretrain's and MMSegmentation's MODELS."""
    MODELS.register_module(module=cls)
    for toolbox in ('mmpretrain', 'mmseg'):
        if toolbox_available(toolbox):
            registry = importlib.import_module(f'{toolbox}.registry')
            registry.MODELS.register_module(module=cls)
    return cls
