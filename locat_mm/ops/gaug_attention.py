"""GAug attention as one registered PyTorch operator: ``torch.ops.locat.gaug_attention``.

``softmax(q k^T / sqrt(c) + B) v`` with GAug's bias ``B`` (SPEC section 1) given by the patch
queries' variances and amplitudes. Registered with ``torch.library`` so that every tool built on
the dispatcher sees a single op with a known signature:

- a fake (meta) implementation, so ``torch.compile`` and ``torch.export`` (dynamic shapes
  included: the grid sizes are ``SymInt`` arguments) trace it without running it;
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
from functools import lru_cache
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


@torch.library.custom_op('locat::gaug_attention', mutates_args=())
def _gaug_attention_op(q: Tensor, k: Tensor, v: Tensor, var: Tensor, amp: Tensor, grid_h: int,
                       grid_w: int, num_prefix: int, eps: float, floor: float) -> Tensor:
    out = _new_output(q)
    fused = fused_cpu_ops(q, k, v, var, amp)
    if fused is not None:
        blocked_forward(fused, out, q, k, v, var, amp, (grid_h, grid_w), num_prefix, eps, floor)
    else:
        factored_forward(out, q, k, v, GaussianTerms.build(var, amp, (grid_h, grid_w), eps, floor),
                         num_prefix)
    return out


@_gaug_attention_op.register_fake
def _(q, k, v, var, amp, grid_h, grid_w, num_prefix, eps, floor):
    return _new_output(q)


@torch.library.custom_op('locat::gaug_attention_backward', mutates_args=())
def _gaug_attention_backward_op(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                                var: Tensor, amp: Tensor, grid_h: int, grid_w: int,
                                num_prefix: int, eps: float, floor: float) -> Grads:
    fused = fused_cpu_ops(grad_out, q, k, v, out, var, amp)
    if fused is not None:
        return blocked_backward(fused, grad_out, q, k, v, out, var, amp, (grid_h, grid_w),
                                num_prefix, eps, floor)
    terms = GaussianTerms.build(var, amp, (grid_h, grid_w), eps, floor)
    dq, dk, dv, d_inv, d_amp = factored_backward(grad_out, q, k, v, out, terms, num_prefix)
    # inv = 1 / (var + eps)  =>  d var = -d inv * inv^2
    d_var = -d_inv * terms.inv_var.square()
    # Contiguous whatever the inputs' layouts, as the fake kernel says.
    return tuple(g.to(t.dtype).contiguous() for g, t in zip((dq, dk, dv, d_var, d_amp),
                                                            (q, k, v, var, amp)))


@_gaug_attention_backward_op.register_fake
def _(grad_out, q, k, v, out, var, amp, grid_h, grid_w, num_prefix, eps, floor):
    return tuple(t.new_empty(t.shape) for t in (q, k, v, var, amp))


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    q, k, v, var, amp, grid_h, grid_w, num_prefix, eps, floor = inputs
    ctx.save_for_backward(q, k, v, output, var, amp)
    ctx.args = (grid_h, grid_w, num_prefix, eps, floor)


def _backward(ctx, grad_out: Tensor):
    q, k, v, out, var, amp = ctx.saved_tensors
    grads = _gaug_attention_backward_op(grad_out, q, k, v, out, var, amp, *ctx.args)
    return (*grads, None, None, None, None, None)


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
    if torch.jit.is_tracing() and isinstance(grid[0], Tensor):
        # The tracer records an op's int arguments as constants; through a scripted call the
        # grid stays a value of the graph, so a trace runs at every input size.
        return _traced_call()(q, k, v, var, amp, torch.stack([grid[0], grid[1]]), num_prefix,
                              eps, floor)
    return _gaug_attention_op(q, k, v, var, amp, grid[0], grid[1], num_prefix, eps, floor)


def _call_with_grid_tensor(q: Tensor, k: Tensor, v: Tensor, var: Tensor, amp: Tensor,
                           grid: Tensor, num_prefix: int, eps: float, floor: float) -> Tensor:
    return torch.ops.locat.gaug_attention(q, k, v, var, amp, int(grid[0]), int(grid[1]),
                                          num_prefix, eps, floor)


@lru_cache(maxsize=1)
def _traced_call() -> Callable[..., Tensor]:
    """The operator behind a TorchScript function that reads the grid from a (2,) tensor."""
    return torch.jit.script(_call_with_grid_tensor)


def _decompose(q, k, v, var, amp, grid_h, grid_w, num_prefix, eps, floor):
    return dense_gaug_attention(q, k, v, var, amp, (grid_h, grid_w), num_prefix, eps, floor)


# For ``ExportedProgram.run_decompositions``: the op as plain ATen (the dense formula).
DECOMPOSITIONS: Dict[torch._ops.OpOverload, Callable[..., Tensor]] = {
    torch.ops.locat.gaug_attention.default: _decompose
}
