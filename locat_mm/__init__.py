"""locat_mm: the Locality-Attending Vision Transformer for MMPretrain and MMSegmentation.

Import it (``custom_imports=dict(imports=['locat_mm'])``) to register ``LocAtViT`` and the
components of the paper's protocols in the installed toolboxes.
"""
from . import compat

compat.apply_all()

from . import datasets, engine  # noqa: E402,F401
from .models import LocAtViT  # noqa: E402
from .registry import register_everywhere, toolbox_available  # noqa: E402
from .version import __version__  # noqa: E402

register_everywhere(LocAtViT)

if toolbox_available('mmseg'):
    from . import seg  # noqa: E402,F401

__all__ = ['LocAtViT', '__version__']
