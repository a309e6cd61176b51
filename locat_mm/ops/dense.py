"""GAug attention by the formula as written: every tensor materialised (the oracle)."""
import torch.nn.functional as F
from torch import Tensor


def pad_prefix(patch_bias: Tensor, num_prefix: int) -> Tensor:
    """Zero-pads a (B, heads, N, N) patch bias to (B, heads, P + N, P + N) for P prefix tokens."""
    if num_prefix == 0:
        return patch_bias
    return F.pad(patch_bias, (num_prefix, 0, num_prefix, 0))


def dense_biased_attention(q: Tensor,
                           k: Tensor,
                           v: Tensor,
                           patch_bias: Tensor,
                           num_prefix: int,
                           dropout_p: float = 0.0) -> Tensor:
    """``softmax(q k^T / sqrt(c) + B) v``, every tensor materialised: the reference formulation.

    Args:
        q, k, v (Tensor): (B, heads, P + N, c).
        patch_bias (Tensor): (B, heads, N, N) bias between patch tokens.
        num_prefix (int): P, the tokens (class token, registers) that get no bias.
        dropout_p (float): Dropout on the attention weights.

    Returns:
        Tensor: (B, heads, P + N, c).
    """
    logits = (q @ k.transpose(-2, -1)) * (q.shape[-1]**-0.5)
    logits = logits.float() + pad_prefix(patch_bias.float(), num_prefix)
    attn = logits.softmax(dim=-1).to(v.dtype)
    attn = F.dropout(attn, p=dropout_p, training=dropout_p > 0)
    return attn @ v
