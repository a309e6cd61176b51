"""Exact GAug attention from the bias's separable per-query terms, chunked (memory-lean).

The forward and backward passes behind the registered operator (``gaug_attention.py``) where
no fused kernel applies (other devices and dtypes, ``LOCAT_FUSED_CPU=0``): ATen ops chunk by
chunk of query rows, keeping nothing N x N between chunks.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .gaussian import GaussianTerms, factor_product

# Elements of one (rows x keys) score chunk in the factored backward pass; bounds the transient
# memory of a layer's backward to a few such chunks (32 MiB each in float32).
_CHUNK_ELEMENTS = 1 << 20
# The forward pass holds one additive-mask chunk at a time (16 MiB in float32); the
# scaled-dot-product kernel re-reads all keys and values per chunk, so these are larger.
_FORWARD_CHUNK_ELEMENTS = 1 << 22


def _add_factored_bias(scores: Tensor, row_factor: Tensor, col_factor: Tensor,
                       rows: slice, num_prefix: int) -> None:
    """Adds the bias of query rows ``rows`` to ``scores`` (B, heads, len(rows), P + N) in place."""
    start = max(rows.start, num_prefix)
    if start < rows.stop:
        patch_rows = slice(start - num_prefix, rows.stop - num_prefix)
        scores[..., start - rows.start:, num_prefix:] += factor_product(
            row_factor[..., patch_rows, :], col_factor[..., patch_rows, :])


def _bias_mask(q: Tensor, row_factor: Tensor, col_factor: Tensor, rows: slice,
               num_prefix: int, storage: Optional[Tensor] = None) -> Tensor:
    """The additive mask (B, heads, len(rows), P + N) of query rows ``rows``, in q's dtype.

    Written into ``storage`` (a flat tensor at least that large) when given: reusing one
    buffer for all chunks of a layer spares fresh pages, whose first touch costs more than
    writing the mask.
    """
    shape = q.shape[:-2] + (rows.stop - rows.start, q.shape[-2])
    if storage is None:
        mask = q.new_empty(shape)
    else:
        mask = storage[:math.prod(shape)].view(shape)
    block, row, col = _patch_block(mask, row_factor, col_factor, rows, num_prefix)
    if block is None:
        return mask.zero_()
    # In place, without a temporary, and without ``out=`` into a view (compilers reject it).
    block.copy_(row).mul_(col)
    prefix_rows = mask.shape[-2] - block.shape[-3]
    mask[..., :prefix_rows, :].zero_()
    mask[..., prefix_rows:, :num_prefix].zero_()
    return mask


def _patch_block(scores: Tensor, row_factor: Tensor, col_factor: Tensor, rows: slice,
                 num_prefix: int) -> Tuple[Optional[Tensor], Tensor, Tensor]:
    """The patch-to-patch part of a score chunk as (B, heads, n, H, W), with the matching
    (B, heads, n, H, 1) and (B, heads, n, 1, W) factors; ``None`` if the chunk has no patch
    query."""
    start = max(rows.start, num_prefix)
    patch_rows = slice(start - num_prefix, rows.stop - num_prefix)
    H, W = row_factor.shape[-1], col_factor.shape[-1]
    if start >= rows.stop:
        return None, row_factor, col_factor
    block = scores[..., start - rows.start:, num_prefix:].unflatten(-1, (H, W))
    return (block, row_factor[..., patch_rows, :, None].to(scores.dtype),
            col_factor[..., patch_rows, None, :].to(scores.dtype))


def _accumulate(total: Optional[Tensor], part: Tensor) -> Tensor:
    return part if total is None else total.add_(part)


def _row_chunks(q: Tensor, elements: Optional[int] = None) -> range:
    """Start rows of query chunks whose (rows x keys) block has about ``elements`` entries
    (default ``_CHUNK_ELEMENTS``)."""
    B, heads, L, _ = q.shape
    elements = _CHUNK_ELEMENTS if elements is None else elements
    return range(0, L, max(1, elements // max(1, B * heads * L)))


def _biased_softmax(scores: Tensor, row_factor: Tensor, col_factor: Tensor, rows: slice,
                    num_prefix: int) -> Tensor:
    """``softmax(scores + bias)`` of a float32 score chunk (B, heads, len(rows), P + N)."""
    _add_factored_bias(scores, row_factor, col_factor, rows, num_prefix)
    return scores.softmax(dim=-1)


def _softmax_backward_factors(d_probs: Tensor, probs: Tensor, delta: Tensor,
                              row_factor: Tensor, col_factor: Tensor, d_row: Tensor,
                              d_col: Tensor, rows: slice, num_prefix: int) -> Tensor:
    """Score gradient ``probs * (d_probs - delta)`` of a chunk (in place of ``d_probs``), and the
    gradient of the chunk's patch queries' bias factors written into ``d_row`` / ``d_col``."""
    d_scores = d_probs.sub_(delta).mul_(probs)
    block, row, col = _patch_block(d_scores, row_factor, col_factor, rows, num_prefix)
    if block is not None:
        patch_rows = slice(rows.stop - num_prefix - block.shape[-3], rows.stop - num_prefix)
        # Products and sums read the strided block without copying it.
        d_row[..., patch_rows, :] = (block * col).sum(-1)
        d_col[..., patch_rows, :] = (block * row).sum(-2)
    return d_scores


def _chunk_scores(q_rows: Tensor, k: Tensor, acc: torch.dtype) -> Tensor:
    """Scores of already scaled query rows against all keys, contiguous, in ``acc``."""
    return torch.matmul(q_rows, k.transpose(-2, -1)).to(acc).contiguous()


def factored_forward(out: Tensor, q: Tensor, k: Tensor, v: Tensor, terms: GaussianTerms,
                     num_prefix: int) -> None:
    """Gaussian-biased attention chunk by chunk of query rows: the fused scaled-dot-product
    kernel with the chunk's bias as an additive mask.

    Args:
        out (Tensor): (B, heads, P + N, c), q's dtype, any layout: receives the result.
        q, k, v (Tensor): (B, heads, P + N, c).
        terms (GaussianTerms): The patch queries' terms, float32.
        num_prefix (int): P.
    """
    row_factor, col_factor = terms.factors()
    L = q.shape[-2]
    chunks = _row_chunks(q, _FORWARD_CHUNK_ELEMENTS)
    storage = q.new_empty(math.prod(q.shape[:-2]) * min(chunks.step, L) * L)
    for start in chunks:
        rows = slice(start, min(L, start + chunks.step))
        mask = _bias_mask(q, row_factor, col_factor, rows, num_prefix, storage)
        out[..., rows, :] = F.scaled_dot_product_attention(q[..., rows, :], k, v, attn_mask=mask)


def factored_backward(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                      terms: GaussianTerms,
                      num_prefix: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`factored_forward` for its output gradient ``grad_out``.

    Recomputes the factors and the scores chunk by chunk and reduces the score gradient
    straight onto the per-query terms.

    Returns:
        tuple[Tensor, ...]: dq, dk, dv (dtypes of q, k, v), and the gradients of
        ``terms.inv_var`` (B, heads, N, 2) and ``terms.amp`` (B, heads, N, 1), float32.
    """
    row_factor, col_factor = terms.factors()
    P = num_prefix
    scale = q.shape[-1]**-0.5
    L = q.shape[-2]
    # One copy each up front; the matmuls below then read them in place.
    q, k, v, grad_out = (t.contiguous() for t in (q, k, v, grad_out))
    # Scores, softmax and accumulations in at least float32, also under autocast.
    acc = torch.promote_types(q.dtype, torch.float32)
    # Per query: D_i = sum_c dO_ic O_ic, the softmax backward's row term.
    delta = (grad_out.to(acc) * out.to(acc)).sum(-1, keepdim=True)
    d_row = torch.zeros_like(row_factor)
    d_col = torch.zeros_like(col_factor)
    dq_parts = []
    dk = dv = None
    chunks = _row_chunks(q)
    for start in chunks:
        rows = slice(start, min(L, start + chunks.step))
        # Scaling the chunk's queries is cheaper than scaling its scores; dk reuses them.
        q_rows, go = q[..., rows, :] * scale, grad_out[..., rows, :]
        probs = _biased_softmax(_chunk_scores(q_rows, k, acc), row_factor, col_factor, rows, P)
        dv = _accumulate(dv, torch.matmul(probs.transpose(-2, -1).to(go.dtype), go).to(acc))
        d_scores = _softmax_backward_factors(
            torch.matmul(go, v.transpose(-2, -1)).to(acc), probs,
            delta[..., rows, :].contiguous(), row_factor, col_factor, d_row, d_col, rows, P)
        del probs
        ds_lp = d_scores.to(q.dtype)
        dq_parts.append(torch.matmul(ds_lp, k).mul_(scale))
        dk = _accumulate(dk, torch.matmul(ds_lp.transpose(-2, -1), q_rows).to(acc))
    dq = dq_parts[0] if len(dq_parts) == 1 else torch.cat(dq_parts, dim=-2)
    return (dq, dk.to(k.dtype), dv.to(v.dtype)) + _factor_gradients(
        terms, row_factor, col_factor, d_row, d_col)


def _factor_gradients(terms: GaussianTerms, row_factor: Tensor, col_factor: Tensor,
                      d_row: Tensor, d_col: Tensor) -> Tuple[Tensor, Tensor]:
    """Gradients of ``terms.inv_var`` (B, heads, N, 2) and ``terms.amp`` (B, heads, N, 1)
    from those of the bias factors, by the chain rule through row = a * exp(Dy * inv_y) and
    col = exp(Dx * inv_x)."""
    d_row_scaled = d_row * row_factor
    d_inv = torch.cat([(d_row_scaled * terms.row_dist).sum(-1, keepdim=True),
                       (d_col * col_factor * terms.col_dist).sum(-1, keepdim=True)], -1)
    d_amp = (d_row * terms.row_gaussian()).sum(-1, keepdim=True)
    return d_inv, d_amp
