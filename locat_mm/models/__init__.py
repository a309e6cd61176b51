from .backbones import LocAtViT

__all__ = ['LocAtViT']
