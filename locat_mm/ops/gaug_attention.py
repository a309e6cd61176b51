"""GAug attention as one registered PyTorch operator: ``torch.ops.locat.gaug_attention``.

``softmax(q k^T / sqrt(c) + B) v`` with GAug's bias ``B`` (SPEC section 1) given by the patch
queries' variances and amplitudes. Registered with ``torch.library`` so that every tool built on
the dispatcher sees a single op with a known signature:

- a fake (meta) implementation, so ``torch.compile`` and ``torch.export`` (dynamic shapes
  included) trace it without running it. The grid is no int argument but the shape of the
  variances, (B, heads, H, W, 2): tracers that record int arguments as constants
  (``torch.jit.trace``) then keep it a size of the graph, valid at every input size;
- a registered autograd formula whose backward is a second operator,
  ``locat::gaug_attention_backward``, so compiled training steps have no graph break and an
  exported program can be differentiated;
- a kernel for every device: on the CPU in float32 the fused blocked C++ kernels
  (``cpu/blocked.py``), elsewhere the chunked factored passes in ATen ops (``factored.py``).
  On CUDA, :class:`~locat_mm.layers.attention.LocAtAttention` calls FlexAttention
  directly (``cuda.py``), which torch compiles and exports natively;
- a plain-ATen decomposition, :func:`~locat_mm.ops.dense.dense_gaug_attention` (the formula as
  written), which the attention layer emits instead of the op while an ONNX exporter traces it
  (neither ONNX exporter can carry a custom op), and which ``torch.export`` users can ask for
  with :data:`DECOMPOSITIONS` (``ep.run_decompositions(DECOMPOSITIONS)``).

Nothing depends on Python-side caches keyed by sizes.
"""
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

from .cpu import fused_cpu_ops
from .cpu.blocked import blocked_backward, blocked_forward
from .dense import dense_gaug_attention
from .factored import factored_backward, factored_forward
from .gaussian import GaussianTerms

Grads = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]


def _new_output(q: Tensor) -> Tensor:
    """The op's output (B, heads, L, c) laid out as (B, L, heads, c), as PyTorch's CPU flash
    attention does: the layer's merge of the heads is then a view, not a copy."""
    B, heads, L, c = q.shape
    return q.new_empty(B, L, heads, c).transpose(1, 2)


def _grid_and_rows(var: Tensor) -> Tuple[Tuple[int, int], Tensor]:
    """Variances (B, heads, H, W, 2) -> the grid (H, W) and the (B, heads, H * W, 2) rows."""
    return (var.shape[2], var.shape[3]), var.flatten(2, 3)


@torch.library.custom_op('locat::gaug_attention', mutates_args=())
def _gaug_attention_op(q: Tensor, k: Tensor, v: Tensor, var: Tensor, amp: Tensor,
                       num_prefix: int, eps: float, floor: float) -> Tensor:
    out = _new_output(q)
    grid, var = _grid_and_rows(var)
    fused = fused_cpu_ops(q, k, v, var, amp)
    if fused is not None:
        blocked_forward(fused, out, q, k, v, var, amp, grid, num_prefix, eps, floor)
    else:
        factored_forward(out, q, k, v, GaussianTerms.build(var, amp, grid, eps, floor),
                         num_prefix)
    return out


@_gaug_attention_op.register_fake
def _(q, k, v, var, amp, num_prefix, eps, floor):
    return _new_output(q)


@torch.library.custom_op('locat::gaug_attention_backward', mutates_args=())
def _gaug_attention_backward_op(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                                var: Tensor, amp: Tensor, num_prefix: int, eps: float,
                                floor: float) -> Grads:
    grid, var_rows = _grid_and_rows(var)
    fused = fused_cpu_ops(grad_out, q, k, v, out, var_rows, amp)
    if fused is not None:
        grads = blocked_backward(fused, grad_out, q, k, v, out, var_rows, amp, grid, num_prefix,
                                 eps, floor)
    else:
        terms = GaussianTerms.build(var_rows, amp, grid, eps, floor)
        dq, dk, dv, d_inv, d_amp = factored_backward(grad_out, q, k, v, out, terms, num_prefix)
        # inv = 1 / (var + eps)  =>  d var = -d inv * inv^2
        grads = (dq, dk, dv, -d_inv * terms.inv_var.square(), d_amp)
    # In the inputs' shapes, contiguous whatever their layouts, as the fake kernel says.
    return tuple(g.to(t.dtype).reshape(t.shape).contiguous()
                 for g, t in zip(grads, (q, k, v, var, amp)))


@_gaug_attention_backward_op.register_fake
def _(grad_out, q, k, v, out, var, amp, num_prefix, eps, floor):
    return tuple(t.new_empty(t.shape) for t in (q, k, v, var, amp))


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    q, k, v, var, amp, num_prefix, eps, floor = inputs
    ctx.save_for_backward(q, k, v, output, var, amp)
    ctx.args = (num_prefix, eps, floor)


def _backward(ctx, grad_out: Tensor):
    q, k, v, out, var, amp = ctx.saved_tensors
    grads = _gaug_attention_backward_op(grad_out, q, k, v, out, var, amp, *ctx.args)
    return (*grads, None, None, None)


_gaug_attention_op.register_autograd(_backward, setup_context=_setup_context)


def gaug_attention(q: Tensor, k: Tensor, v: Tensor, var: Tensor, amp: Tensor,
                   grid: Tuple[int, int], num_prefix: int, eps: float, floor: float) -> Tensor:
    """Exact GAug attention through the registered operator; no attention dropout.

    Args:
        q, k, v (Tensor): (B, heads, P + N, c), one dtype.
        var (Tensor): (B, heads, N, 2) variances of the patch queries (rows, columns), float32.
        amp (Tensor): (B, heads, N, 1) amplitudes, float32.
        grid (tuple[int, int]): Patch grid (H, W), N = H * W in row-major order.
        num_prefix (int): P, leading tokens (class token, registers) without bias.
        eps (float): Variance offset; floor (float): lower clamp of the distances (SPEC 1).

    Returns:
        Tensor: (B, heads, P + N, c), q's dtype.
    """
    return _gaug_attention_op(q, k, v, var.unflatten(2, grid), amp, num_prefix, eps, floor)


def _decompose(q, k, v, var, amp, num_prefix, eps, floor):
    grid, var = _grid_and_rows(var)
    return dense_gaug_attention(q, k, v, var, amp, grid, num_prefix, eps, floor)


# For ``ExportedProgram.run_decompositions``: the op as plain ATen (the dense formula).
DECOMPOSITIONS: Dict[torch._ops.OpOverload, Callable[..., Tensor]] = {
    torch.ops.locat.gaug_attention.default: _decompose
}
