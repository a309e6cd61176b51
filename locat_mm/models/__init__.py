from .backbones import LocAtSwin, LocAtViT

__all__ = ['LocAtViT', 'LocAtSwin']
