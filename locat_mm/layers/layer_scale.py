"""Layer scale (Touvron et al., CaiT): a learned per-channel factor on a residual branch."""
import torch
import torch.nn as nn
from torch import Tensor


class LayerScale(nn.Module):
    """``x * weight`` over the last (channel) axis; key ``weight`` as mmpretrain's and mmcv's.

    Args:
        dim (int): Channels C.
        init_value (float): Initial value of every entry of ``weight``.
    """

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C)."""
        return x * self.weight
