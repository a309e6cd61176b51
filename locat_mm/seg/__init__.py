"""Components of the segmentation protocols, registered in MMSegmentation."""
from ..registry import toolbox_available
from .checks import InputCheckError, validate_config
from .datasets import SyntheticShapesDataset
from .heads import LinearSegHead
from .metrics import ClassIoUMetric

__all__ = [
    'InputCheckError', 'validate_config', 'SyntheticShapesDataset', 'LinearSegHead', 'ClassIoUMetric'
]

# The layer-decay constructor extends MMPretrain's; without MMPretrain the UperNet configs'
# optimizer is the only thing missing.
if toolbox_available('mmpretrain'):
    from .optim import LocAtLayerDecayOptimWrapperConstructor  # noqa: F401
    __all__.append('LocAtLayerDecayOptimWrapperConstructor')
