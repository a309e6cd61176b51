from ..registry import register_everywhere
from .backbones import LocAtViT

register_everywhere(LocAtViT)

__all__ = ['LocAtViT']
