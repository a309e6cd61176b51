"""Components of the segmentation protocols, registered in MMSegmentation."""
from .heads import LinearSegHead
from .optim import LocAtLayerDecayOptimWrapperConstructor
from .checks import InputCheckError, validate_config
from .datasets import SyntheticShapesDataset

__all__ = ['LinearSegHead', 'LocAtLayerDecayOptimWrapperConstructor']
__all__ += ['InputCheckError', 'validate_config', 'SyntheticShapesDataset']
