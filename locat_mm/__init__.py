"""locat_mm: the Locality-Attending Vision Transformer for MMPretrain and MMSegmentation.

Import it (``custom_imports=dict(imports=['locat_mm'])``) to register ``LocAtViT``, the hooks
and the components of the paper's protocols in the installed toolboxes, and to make every
checkpoint load safe (:mod:`locat_mm.checkpoint`). Cheap: the modules are imported when a
toolbox first looks them up. With torch alone (no mmengine) it registers nothing, and
``locat_mm.ops`` and ``locat_mm.layers`` work as plain torch code.
"""
import importlib.util

from .version import __version__

__all__ = ['LocAtViT', '__version__']

if importlib.util.find_spec('mmengine') is not None:
    from . import checkpoint, compat, hub, registry

    compat.apply_all()
    hub.register_scheme()
    checkpoint.guard_mmengine_loaders()
    checkpoint.guard_model_loading()
    registry.register_in_toolboxes()
    if registry.toolbox_available('mmpretrain'):
        registry.register_model_index()


def __getattr__(name: str):
    # `from locat_mm import LocAtViT` without importing the model at `import locat_mm`.
    if name == 'LocAtViT':
        from .models import LocAtViT
        return LocAtViT
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
