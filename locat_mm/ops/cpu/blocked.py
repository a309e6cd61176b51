"""Calls into the fused blocked CPU kernels (``gaug_cpu.cpp``): output buffers, layouts.

The kernels take the GAug terms themselves (variances and amplitudes per patch query) and
compute the two per-axis factors of a block of queries where the block is processed, so
nothing of size N x H is built in torch, forward or backward.
"""
from types import ModuleType
from typing import Tuple

import torch
from torch import Tensor

# Query rows per block: a block's (rows x keys) scores stay in the cache. The backward holds
# two such buffers (probabilities and their gradient), hence its smaller blocks.
FORWARD_BLOCK_ROWS = 256
BACKWARD_BLOCK_ROWS = 128


def _unit_stride(t: Tensor) -> Tensor:
    # The kernels read strided (B, heads, L, c) views in place if their channels are adjacent.
    return t if t.stride(-1) == 1 else t.contiguous()


def _flat_terms(var: Tensor, amp: Tensor) -> Tuple[Tensor, Tensor]:
    return var.flatten(0, 1).contiguous(), amp.flatten(0, 1).contiguous()


def blocked_forward(ops: ModuleType, out: Tensor, q: Tensor, k: Tensor, v: Tensor, var: Tensor,
                    amp: Tensor, grid: Tuple[int, int], num_prefix: int, eps: float,
                    floor: float) -> None:
    """GAug attention by the fused forward kernel, written into ``out`` (B, heads, P + N, c),
    any layout with unit last stride; other arguments as ``gaug_attention``, all float32 CPU
    tensors."""
    q, k, v = (_unit_stride(t) for t in (q, k, v))
    ops.attention_forward_(out, q, k, v, *_flat_terms(var, amp), grid[0], grid[1], num_prefix,
                           q.shape[-1]**-0.5, eps, floor, FORWARD_BLOCK_ROWS)


def blocked_backward(ops: ModuleType, grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor,
                     out: Tensor, var: Tensor, amp: Tensor, grid: Tuple[int, int],
                     num_prefix: int, eps: float,
                     floor: float) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`blocked_forward` for ``grad_out``: dq, dk, dv, d_var (B, heads, N, 2)
    and d_amp (B, heads, N, 1), all contiguous."""
    grad_out, q, k, v, out = (_unit_stride(t) for t in (grad_out, q, k, v, out))
    dq, dk, dv, d_var, d_amp = (t.new_empty(t.shape) for t in (q, k, v, var, amp))
    ops.attention_backward_(dq, dk, dv, d_var.flatten(0, 1), d_amp.flatten(0, 1), grad_out, q, k,
                            v, out, *_flat_terms(var, amp), grid[0], grid[1], num_prefix,
                            q.shape[-1]**-0.5, eps, floor, BACKWARD_BLOCK_ROWS)
    return dq, dk, dv, d_var, d_amp
