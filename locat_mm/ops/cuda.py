"""Gaussian-biased attention as a FlexAttention ``score_mod``: no N x N bias ever exists.

FlexAttention (``torch.nn.attention.flex_attention``) fuses a user function of
``(score, batch, head, q_idx, kv_idx)`` into a flash-attention kernel. GAug's bias is
separable (SPEC section 1), so the function only reads one element of each per-axis factor::

    score + row_factor[b, h, q - P, (kv - P) // W] * col_factor[b, h, q - P, (kv - P) % W]

for a patch query and a patch key, and ``score`` unchanged when either is a prefix token.
Gradients reach the two factors through FlexAttention's support for captured tensors that
require grad. On CUDA the kernel is compiled (Triton): neither the bias nor the scores are
stored, in the forward or the backward pass. Elsewhere torch runs FlexAttention eagerly, which
materialises the scores and supports no backward pass, so it only serves checking.
"""
from functools import lru_cache
from typing import Callable

import torch
from torch import Tensor

try:
    from torch.nn.attention.flex_attention import flex_attention
except ImportError:  # torch < 2.5 has no FlexAttention; callers use the factored path.
    flex_attention = None

ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def flex_supported(*tensors: Tensor) -> bool:
    """Whether FlexAttention can run a call on these tensors (q, k, v and the two factors).

    CUDA runs forward and backward; torch rejects the backward pass on every other device, so
    there only calls that need no gradient qualify.
    """
    if flex_attention is None:
        return False
    if tensors[0].device.type == 'cuda':
        return True
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


@lru_cache(maxsize=None)
def _compiled_flex_attention() -> Callable[..., Tensor]:
    """FlexAttention compiled once per process; uncompiled it would materialise the scores.

    Each new grid (or prefix count) compiles a new kernel on first use, as ``W`` and ``P``
    are constants of the score function.
    """
    return torch.compile(flex_attention)


def gaug_score_mod(row_factor: Tensor, col_factor: Tensor, num_prefix: int) -> ScoreMod:
    """The ``score_mod`` that adds the separable GAug bias to patch-to-patch scores.

    Args:
        row_factor (Tensor): (B, heads, N, H), amplitude included.
        col_factor (Tensor): (B, heads, N, W).
        num_prefix (int): P, the leading tokens (class token, registers) without bias.

    Returns:
        Callable: ``score_mod(score, b, h, q_idx, kv_idx) -> score + bias``.
    """
    W = col_factor.shape[-1]

    def score_mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        qi = q_idx - num_prefix
        kj = kv_idx - num_prefix
        is_patch_pair = (qi >= 0) & (kj >= 0)
        # Prefix indices are clamped to a valid patch so the reads stay in bounds; ``where``
        # then discards those values (and their gradient).
        qi = qi.clamp(min=0)
        kj = kj.clamp(min=0)
        bias = row_factor[b, h, qi, kj // W] * col_factor[b, h, qi, kj % W]
        return torch.where(is_patch_pair, score + bias, score)

    return score_mod


def flex_biased_attention(q: Tensor, k: Tensor, v: Tensor, row_factor: Tensor,
                          col_factor: Tensor, num_prefix: int) -> Tensor:
    """Gaussian-biased attention through FlexAttention (see the module docstring).

    Equals :func:`~locat_mm.ops.dense.dense_biased_attention` with
    ``patch_bias[..., i, y*W + x] = row_factor[..., i, y] * col_factor[..., i, x]``. No
    attention dropout. Check :func:`flex_supported` first.

    Args:
        q, k, v (Tensor): (B, heads, P + N, c), one dtype.
        row_factor (Tensor): (B, heads, N, H), float32.
        col_factor (Tensor): (B, heads, N, W), float32.
        num_prefix (int): P.

    Returns:
        Tensor: (B, heads, P + N, c), the dtype of ``q``.
    """
    score_mod = gaug_score_mod(row_factor, col_factor, num_prefix)
    # Inside a compiled model the outer compilation fuses the call itself.
    if q.device.type == 'cuda' and not torch.compiler.is_compiling():
        return _compiled_flex_attention()(q, k, v, score_mod=score_mod)
    return flex_attention(q, k, v, score_mod=score_mod)
