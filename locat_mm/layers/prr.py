"""PRR: the parameter-free attention over the final tokens (SPEC section 2)."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def parameter_free_attention(x: Tensor, num_heads: int) -> Tensor:
    """PRR: one multi-head self-attention with no weights, ``softmax(x x^T / sqrt(c)) x``.

    Args:
        x (Tensor): Tokens, (B, L, C); C must divide into ``num_heads``.
        num_heads (int): Heads to split the channels into.

    Returns:
        Tensor: (B, L, C).
    """
    B, L, C = x.shape
    heads = x.reshape(B, L, num_heads, C // num_heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(heads, heads, heads)
    return out.transpose(1, 2).reshape(B, L, C)


class PatchRepresentationRefinement(nn.Module):
    """PRR as a module (no parameters), so ``print(model)`` and forward hooks see it.

    Args:
        num_heads (int): Heads to split the channels into (the backbone's).
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, C) -> (B, L, C); every token, prefix tokens included."""
        return parameter_free_attention(x, self.num_heads)

    def extra_repr(self) -> str:
        return f'num_heads={self.num_heads}'
