"""Exact GAug attention from the bias's separable per-query terms, chunked (memory-lean).

The forward and backward passes behind the registered operator (``gaug_attention.py``) where
no fused kernel applies (other devices and dtypes, ``LOCAT_FUSED_CPU=0``): ATen ops chunk by
chunk of scores (whole images, whole heads or row blocks of one head, see ``_chunks``), keeping
nothing N x N between chunks.
"""
import math
from typing import List, Optional, Sequence, Tuple

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
# At most about this many chunks per pass (see ``_chunks``): past it, chunks grow instead.
_MAX_CHUNKS = 64


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


Chunk = Tuple[slice, slice, slice]


def _chunks(shape: Sequence[int], elements: int) -> List[Chunk]:
    """(batch, heads, query rows) index slices covering (B, heads, L, L) scores in chunks.

    Each chunk holds at most ``budget`` scores, where the budget is ``elements`` raised to
    1 / ``_MAX_CHUNKS`` of all scores: whole heads (or whole images) at once while one head's
    L x L scores fit, else row blocks of one head. So a large batch gives a few wide chunks
    rather than hundreds of one-row ones, and there are never more than
    ``3 * _MAX_CHUNKS`` chunks (a Python loop per chunk and layer) whatever the batch.
    """
    B, heads, L = shape[0], shape[1], shape[2]
    per_head = L * L
    budget = max(elements, -(-B * heads * per_head // _MAX_CHUNKS))
    every = slice(0, L)
    if heads * per_head <= budget:
        step = budget // (heads * per_head)
        return [(slice(b, min(B, b + step)), slice(0, heads), every) for b in range(0, B, step)]
    if per_head <= budget:
        step = budget // per_head
        return [(slice(b, b + 1), slice(h, min(heads, h + step)), every)
                for b in range(B) for h in range(0, heads, step)]
    rows = max(1, budget // L)
    return [(slice(b, b + 1), slice(h, h + 1), slice(r, min(L, r + rows)))
            for b in range(B) for h in range(heads) for r in range(0, L, rows)]


def _chunk_size(chunk: Chunk, shape: Sequence[int]) -> int:
    """Number of scores of a chunk of (B, heads, L, L) scores."""
    return math.prod(len(range(*sl.indices(n))) for sl, n in zip(chunk, shape[:3])) * shape[2]


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
    """Gaussian-biased attention chunk by chunk (``_chunks``): the fused scaled-dot-product
    kernel with the chunk's bias as an additive mask.

    Args:
        out (Tensor): (B, heads, P + N, c), q's dtype, any layout: receives the result.
        q, k, v (Tensor): (B, heads, P + N, c).
        terms (GaussianTerms): The patch queries' terms, float32.
        num_prefix (int): P.
    """
    row_factor, col_factor = terms.factors()
    chunks = _chunks(q.shape, _FORWARD_CHUNK_ELEMENTS)
    storage = q.new_empty(max(_chunk_size(chunk, q.shape) for chunk in chunks))
    for b, h, rows in chunks:
        mask = _bias_mask(q[b, h], row_factor[b, h], col_factor[b, h], rows, num_prefix,
                          storage)
        out[b, h, rows] = F.scaled_dot_product_attention(q[b, h, rows], k[b, h], v[b, h],
                                                         attn_mask=mask)


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
    # One copy each up front; the matmuls below then read them in place.
    q, k, v, grad_out = (t.contiguous() for t in (q, k, v, grad_out))
    # Scores, softmax and accumulations in at least float32, also under autocast.
    acc = torch.promote_types(q.dtype, torch.float32)
    # Per query: D_i = sum_c dO_ic O_ic, the softmax backward's row term.
    delta = (grad_out.to(acc) * out.to(acc)).sum(-1, keepdim=True)
    d_row = torch.zeros_like(row_factor)
    d_col = torch.zeros_like(col_factor)
    dq = torch.empty_like(q)
    dk = torch.zeros(k.shape, dtype=acc, device=k.device)
    dv = torch.zeros(v.shape, dtype=acc, device=v.device)
    for b, h, rows in _chunks(q.shape, _CHUNK_ELEMENTS):
        # Scaling the chunk's queries is cheaper than scaling its scores; dk reuses them.
        q_rows, go = q[b, h, rows] * scale, grad_out[b, h, rows]
        k_bh, v_bh = k[b, h], v[b, h]
        row_bh, col_bh = row_factor[b, h], col_factor[b, h]
        probs = _biased_softmax(_chunk_scores(q_rows, k_bh, acc), row_bh, col_bh, rows, P)
        dv[b, h] += torch.matmul(probs.transpose(-2, -1).to(go.dtype), go).to(acc)
        # d_row[b, h] and d_col[b, h] are views: the factor gradients land in place.
        d_scores = _softmax_backward_factors(
            torch.matmul(go, v_bh.transpose(-2, -1)).to(acc), probs,
            delta[b, h, rows].contiguous(), row_bh, col_bh, d_row[b, h], d_col[b, h], rows, P)
        del probs
        ds_lp = d_scores.to(q.dtype)
        dq[b, h, rows] = torch.matmul(ds_lp, k_bh).mul_(scale)
        dk[b, h] += torch.matmul(ds_lp.transpose(-2, -1), q_rows).to(acc)
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
