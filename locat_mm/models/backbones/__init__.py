from .locat_jumbo import LocAtJumbo
from .locat_ropevit import LocAtRoPEViT
from .locat_swin import LocAtSwin
from .locat_vit import LocAtViT

__all__ = ['LocAtViT', 'LocAtSwin', 'LocAtRoPEViT', 'LocAtJumbo']
