"""Attention kernels of LocAtViT: Gaussian-biased attention (dense and factored) and PRR."""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

# Elements of one (rows x keys) score chunk in the factored backward pass; bounds the transient
# memory of a layer's backward to a few such chunks (32 MiB each in float32).
_CHUNK_ELEMENTS = 1 << 23


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


def _add_factored_bias(scores: Tensor, row_factor: Tensor, col_factor: Tensor,
                       rows: slice, num_prefix: int) -> None:
    """Adds the bias of query rows ``rows`` to ``scores`` (B, heads, len(rows), P + N) in place.

    ``addcmul_`` multiplies the two factors straight into the score block, so no N x N
    temporary is made.
    """
    start = max(rows.start, num_prefix)
    if start >= rows.stop:
        return
    patch_rows = slice(start - num_prefix, rows.stop - num_prefix)
    H, W = row_factor.shape[-1], col_factor.shape[-1]
    block = scores[..., start - rows.start:, num_prefix:].unflatten(-1, (H, W))
    block.addcmul_(row_factor[..., patch_rows, :, None].to(scores.dtype),
                   col_factor[..., patch_rows, None, :].to(scores.dtype))


def _accumulate(total: Optional[Tensor], part: Tensor) -> Tensor:
    return part if total is None else total.add_(part)


class _FactoredBiasedAttention(torch.autograd.Function):
    """Gaussian-biased attention that never keeps an N x N tensor for the backward pass.

    Forward runs the fused scaled-dot-product kernel with the bias as an additive mask that
    exists only for that call. Backward recomputes the scores chunk by chunk of query rows and
    reduces the score gradient straight onto the two per-axis factors.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, row_factor: Tensor, col_factor: Tensor,
                num_prefix: int) -> Tensor:
        L = q.shape[-2]
        mask = q.new_zeros(q.shape[:-2] + (L, L))
        _add_factored_bias(mask, row_factor, col_factor, slice(0, L), num_prefix)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        del mask
        ctx.save_for_backward(q, k, v, out, row_factor, col_factor)
        ctx.num_prefix = num_prefix
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v, out, row_factor, col_factor = ctx.saved_tensors
        P = ctx.num_prefix
        scale = q.shape[-1]**-0.5
        B, heads, L, _ = q.shape
        H, W = row_factor.shape[-1], col_factor.shape[-1]
        # One copy each up front; the matmuls below then read them in place.
        q, k, v, grad_out = (t.contiguous() for t in (q, k, v, grad_out))
        # Scores, softmax and accumulations in at least float32, also under autocast.
        acc = torch.promote_types(q.dtype, torch.float32)
        # Per query: D_i = sum_c dO_ic O_ic, the softmax backward's row term.
        delta = (grad_out.to(acc) * out.to(acc)).sum(-1, keepdim=True)
        dq_parts = []
        dk = dv = None
        d_row = torch.zeros_like(row_factor)
        d_col = torch.zeros_like(col_factor)
        chunk = max(1, _CHUNK_ELEMENTS // max(1, B * heads * L))
        for start in range(0, L, chunk):
            rows = slice(start, min(L, start + chunk))
            q_rows, go = q[..., rows, :], grad_out[..., rows, :]
            scores = torch.matmul(q_rows, k.transpose(-2, -1)).to(acc).mul_(scale)
            _add_factored_bias(scores, row_factor, col_factor, rows, P)
            probs = scores.softmax(dim=-1)
            del scores
            dv = _accumulate(dv, torch.matmul(probs.transpose(-2, -1).to(go.dtype), go).to(acc))
            d_scores = torch.matmul(go, v.transpose(-2, -1)).to(acc)
            d_scores.sub_(delta[..., rows, :]).mul_(probs)
            del probs
            first = max(rows.start, P)
            if first < rows.stop:
                patch_rows = slice(first - P, rows.stop - P)
                ds_patch = d_scores[..., first - rows.start:, P:].unflatten(-1, (H, W)).to(
                    row_factor.dtype)
                # Elementwise products and sums read the strided block without copying it.
                d_row[..., patch_rows, :] = (ds_patch * col_factor[..., patch_rows, None, :]).sum(-1)
                d_col[..., patch_rows, :] = (ds_patch * row_factor[..., patch_rows, :, None]).sum(-2)
                del ds_patch
            ds_lp = d_scores.to(q.dtype)
            dq_parts.append(torch.matmul(ds_lp, k).mul_(scale))
            dk = _accumulate(dk, torch.matmul(ds_lp.transpose(-2, -1), q_rows).to(acc).mul_(scale))
        dq = dq_parts[0] if len(dq_parts) == 1 else torch.cat(dq_parts, dim=-2)
        return dq, dk.to(k.dtype), dv.to(v.dtype), d_row, d_col, None


def factored_biased_attention(q: Tensor, k: Tensor, v: Tensor, row_factor: Tensor,
                              col_factor: Tensor, num_prefix: int) -> Tensor:
    """Gaussian-biased attention from the bias's separable factors.

    Equals :func:`dense_biased_attention` with ``patch_bias[..., i, y*W + x] =
    row_factor[..., i, y] * col_factor[..., i, x]``, without storing any N x N tensor between
    forward and backward. No attention dropout.

    Args:
        q, k, v (Tensor): (B, heads, P + N, c).
        row_factor (Tensor): (B, heads, N, H), float32.
        col_factor (Tensor): (B, heads, N, W), float32.
        num_prefix (int): P.

    Returns:
        Tensor: (B, heads, P + N, c).
    """
    return _FactoredBiasedAttention.apply(q, k, v, row_factor, col_factor, num_prefix)


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
