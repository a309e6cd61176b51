from ..registry import register_everywhere
from .backbones import LocAtSwin, LocAtViT

register_everywhere(LocAtViT)

__all__ = ['LocAtViT', 'LocAtSwin']
