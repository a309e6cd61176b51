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
import warnings
from functools import lru_cache
from typing import Callable

import torch
from torch import Tensor

try:
    from torch.nn.attention.flex_attention import flex_attention
except ImportError:  # torch < 2.5 has no FlexAttention; callers use the factored path.
    flex_attention = None

ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


# Inductor's CUDA FlexAttention kernel (torch/_inductor/kernel/flex/flex_attention.py) raises
# "NYI: embedding dimension ... must be at least 16" below this head width; widths that are not
# powers of two (80 in arch 'h', 88 in 'eva-g') run there with padded loads from torch 2.6 on.
FLEX_MIN_HEAD_DIM = 16
_FLEX_ANY_HEAD_DIM = tuple(int(n) for n in torch.__version__.split('.')[:2]) >= (2, 6)


class FlexUnavailable(RuntimeError):
    """The compiled FlexAttention kernel failed; the caller runs the operator instead."""


# Set (to the error) when compiling FlexAttention failed once: later calls skip it.
_compile_failure = []


def flex_head_dim_supported(head_dim: int) -> bool:
    """Whether the compiled CUDA FlexAttention kernel takes heads of this width."""
    power_of_two = head_dim & (head_dim - 1) == 0
    return head_dim >= FLEX_MIN_HEAD_DIM and (power_of_two or _FLEX_ANY_HEAD_DIM)


def _runs_compiled(q: Tensor) -> bool:
    """Whether a call on ``q`` runs the compiled kernel: on CUDA, outside an enclosing
    compilation (which then fuses the call itself)."""
    return q.device.type == 'cuda' and not torch.compiler.is_compiling()


def flex_supported(*tensors: Tensor) -> bool:
    """Whether FlexAttention can run a call on these tensors (q, k, v and the two factors).

    CUDA runs forward and backward, compiled, for head widths the kernel takes
    (:func:`flex_head_dim_supported`) unless compiling it has failed in this process; torch
    rejects the backward pass on every other device, so there only calls that need no
    gradient qualify.
    """
    if flex_attention is None:
        return False
    if _runs_compiled(tensors[0]):
        return not _compile_failure and flex_head_dim_supported(tensors[0].shape[-1])
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _flex_gaug(q: Tensor, k: Tensor, v: Tensor, row_factor: Tensor, col_factor: Tensor,
               num_prefix: int) -> Tensor:
    return flex_attention(q, k, v, score_mod=gaug_score_mod(row_factor, col_factor, num_prefix))


@lru_cache(maxsize=1)
def _compiled_flex_gaug() -> Callable[..., Tensor]:
    """The fused kernel, compiled once per process with dynamic shapes.

    The score function is built inside the compiled function from the factors' shapes, so the
    grid width is a symbolic size rather than a constant: images of new sizes reuse the
    kernel instead of compiling one per grid (``torch._dynamo``'s recompile limit would
    otherwise stop whole-image evaluation on varying sizes).
    """
    return torch.compile(_flex_gaug, dynamic=True)


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
    attention dropout. Check :func:`flex_supported` first; raises :class:`FlexUnavailable`
    if the compiled kernel cannot be built.

    Args:
        q, k, v (Tensor): (B, heads, P + N, c), one dtype.
        row_factor (Tensor): (B, heads, N, H), float32.
        col_factor (Tensor): (B, heads, N, W), float32.
        num_prefix (int): P.

    Returns:
        Tensor: (B, heads, P + N, c), the dtype of ``q``.
    """
    if _runs_compiled(q):
        return _run_compiled(q, k, v, row_factor, col_factor, num_prefix)
    return _flex_gaug(q, k, v, row_factor, col_factor, num_prefix)


def _run_compiled(*args) -> Tensor:
    """The compiled kernel, or :class:`FlexUnavailable` (after one warning per process) when
    compiling fails: no Triton, a GPU Triton does not support, or dynamo's recompile limit
    (which would otherwise run FlexAttention eagerly, storing every score)."""
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            return _compiled_flex_gaug()(*args)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: B902 -- any compile failure: the operator is exact too
        _compile_failure.append(err)
        warnings.warn(
            f'LocAtViT: compiling FlexAttention failed ({type(err).__name__}: {err}); the GAug '
            "attention runs the registered operator from now on (gaug_impl='factored'), "
            'which is exact but slower on CUDA.')
        raise FlexUnavailable(str(err)) from err
