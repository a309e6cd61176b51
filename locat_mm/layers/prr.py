"""PRR: the parameter-free attention over the final tokens (SPEC section 2)."""
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
