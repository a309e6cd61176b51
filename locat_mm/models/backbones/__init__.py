from .locat_swin import LocAtSwin
from .locat_vit import LocAtViT

__all__ = ['LocAtViT', 'LocAtSwin']
