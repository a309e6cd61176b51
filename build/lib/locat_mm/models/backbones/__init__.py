from .locat_vit import LocAtViT

__all__ = ['LocAtViT']
