"""PRR: the parameter-free attention over the final tokens (SPEC section 2)."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def parameter_free_attention(x: Tensor, num_heads: int, queries: slice = slice(None)) -> Tensor:
    """PRR: one multi-head self-attention with no weights, ``softmax(x x^T / sqrt(c)) x``.

    Args:
        x (Tensor): Tokens, (B, L, C); C must divide into ``num_heads``.
        num_heads (int): Heads to split the channels into.
        queries (slice): The tokens whose refined value is wanted; every token is still a key
            and a value. Rows of attention are independent, so asking for the class token alone
            gives exactly its row of the full result at 1/L of the cost.

    Returns:
        Tensor: (B, L', C), the refined tokens ``x[:, queries]``.
    """
    B, L, C = x.shape
    heads = x.reshape(B, L, num_heads, C // num_heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(heads[:, :, queries], heads, heads)
    return out.transpose(1, 2).reshape(B, -1, C)


class PatchRepresentationRefinement(nn.Module):
    """PRR as a module (no parameters), so ``print(model)`` and forward hooks see it.

    Args:
        num_heads (int): Heads to split the channels into (the backbone's).
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(self, x: Tensor, queries: slice = slice(None)) -> Tensor:
        """(B, L, C) -> (B, L', C), the refined ``x[:, queries]`` (default every token,
        prefix tokens included)."""
        return parameter_free_attention(x, self.num_heads, queries)

    def extra_repr(self) -> str:
        return f'num_heads={self.num_heads}'
