from ..registry import register_everywhere
from .backbones import LocAtJumbo, LocAtRoPEViT, LocAtSwin, LocAtViT

register_everywhere(LocAtViT)

__all__ = ['LocAtViT', 'LocAtSwin', 'LocAtRoPEViT', 'LocAtJumbo']
