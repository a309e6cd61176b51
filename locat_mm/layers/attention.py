"""LocAtViT's attention layer: qkv, GAug terms, the biased attention operator, projection."""
import warnings
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops.cuda import FlexUnavailable, flex_biased_attention, flex_supported
from ..ops.dense import dense_gaug_attention
from ..ops.gaug_attention import gaug_attention
from ..ops.gaussian import GaussianTerms
from .gaug import GaussianAugmentation
from .layer_scale import LayerScale

GAUG_IMPLS = ('auto', 'factored', 'flex', 'dense')
# Whether the dense-path warning for attention dropout was given in this process.
_dropout_warned = []


class LocAtAttention(nn.Module):
    """Multi-head self-attention with an optional GAug bias between patch tokens.

    Args:
        embed_dims (int): Token width C.
        num_heads (int): Heads; C must divide into them.
        base_grid (tuple[int, int]): Patch grid the model was built for.
        qkv_bias (bool): Bias in the qkv projection.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after the output projection.
        gaug (bool): Add the Gaussian locality bias.
        gaug_impl (str): How the GAug attention runs; all give the same numbers.

            - ``'auto'`` (default): FlexAttention on CUDA (one fused kernel, forward and
              backward, compiled once with dynamic shapes), the registered operator
              ``locat::gaug_attention`` elsewhere (fused C++ passes on the CPU).
            - ``'factored'``: always the registered operator (chunked, memory-lean; on CUDA
              its backward is a Python loop over row chunks: slow at training batch sizes).
            - ``'flex'``: FlexAttention wherever torch runs it (on CPU: inference only),
              else the operator.
            - ``'dense'``: the formula as written with an N x N bias (the reference).

            Attention dropout always runs the dense formula (warned once, with its memory);
            on CUDA, a FlexAttention compile failure falls back to the operator (warned
            once), and head widths the kernel does not take get the operator. While an ONNX exporter traces
            the model (``torch.onnx.is_in_onnx_export()``), every setting emits the dense
            formula in plain ATen ops, which both exporters translate; ``torch.export`` and
            ``torch.compile`` keep the operator (or FlexAttention), ``torch.jit.trace`` the
            operator.
        proj_bias (bool): Bias in the output projection.
        layer_scale_init_value (float): Layer scale on the output (key ``gamma1``); 0: none.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 base_grid: Tuple[int, int],
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 gaug: bool = True,
                 gaug_impl: str = 'auto',
                 proj_bias: bool = True,
                 layer_scale_init_value: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        if gaug_impl not in GAUG_IMPLS:
            raise ValueError(f'gaug_impl must be one of {GAUG_IMPLS}, got {gaug_impl!r}')
        self.embed_dims = embed_dims  # read by upstream code (mmcv MultiheadAttention has it)
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gamma1 = LayerScale(embed_dims, layer_scale_init_value) \
            if layer_scale_init_value > 0 else nn.Identity()
        self.gaug = GaussianAugmentation(self.head_dims, base_grid) if gaug else None
        self.gaug_impl = gaug_impl

    def split_heads(self, qkv: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The output of ``self.qkv`` (B, L, 3C) -> q, k, v, each (B, heads, L, c)."""
        B, L, _ = qkv.shape
        qkv = qkv.reshape(B, L, 3, self.num_heads, self.head_dims)
        # Contiguous heads: the attention kernels would copy them anyway, and GAug's maps then
        # read q in place (as the kernels' saved input) instead of saving a copy of their own.
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        return q, k, v

    def forward(self, x: Tensor, grid: Tuple[int, int], num_prefix: int) -> Tensor:
        """(B, P + H*W, C) tokens on grid (H, W) -> (B, P + H*W, C)."""
        B, L, C = x.shape
        q, k, v = self.split_heads(self.qkv(x))
        dropout_p = self.attn_drop if self.training else 0.
        if self.gaug is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            var, amp = self.gaug(q, grid, num_prefix)
            out = self._biased_attention(q, k, v, var, amp, grid, num_prefix, dropout_p)
        out = out.transpose(1, 2).reshape(B, L, C)
        return self.gamma1(self.proj_drop(self.proj(out)))

    def gaug_path(self, *tensors: Tensor, dropout_p: float = 0.) -> str:
        """The kernel the GAug attention takes for these inputs (q first, then any tensors
        that may need gradients) in the current context: ``'dense'``, ``'flex'`` or
        ``'factored'`` (the registered operator); see ``gaug_impl``."""
        q = tensors[0]
        if self.gaug_impl == 'dense' or dropout_p > 0 or torch.onnx.is_in_onnx_export():
            return 'dense'
        wants_flex = self.gaug_impl == 'flex' or (self.gaug_impl == 'auto'
                                                  and q.device.type == 'cuda')
        # TorchScript cannot hold FlexAttention; traced models (and FLOP counters) get the op.
        if wants_flex and not torch.jit.is_tracing() and flex_supported(*tensors):
            return 'flex'
        return 'factored'

    def _biased_attention(self, q: Tensor, k: Tensor, v: Tensor, var: Tensor, amp: Tensor,
                          grid: Tuple[int, int], num_prefix: int, dropout_p: float) -> Tensor:
        eps, floor = self.gaug.eps, self.gaug.dist_floor
        path = self.gaug_path(q, k, v, var, amp, dropout_p=dropout_p)
        if path == 'dense':
            if dropout_p > 0 and self.gaug_impl != 'dense':
                _warn_dense_dropout(q, dropout_p)
            return dense_gaug_attention(q, k, v, var, amp, grid, num_prefix, eps, floor,
                                        dropout_p)
        if path == 'flex':
            factors = GaussianTerms.build(var, amp, grid, eps, floor).factors()
            try:
                return flex_biased_attention(q, k, v, *factors, num_prefix)
            except FlexUnavailable:
                pass  # warned once; the operator below gives the same numbers
        return gaug_attention(q, k, v, var, amp, grid, num_prefix, eps, floor)


def _warn_dense_dropout(q: Tensor, dropout_p: float) -> None:
    """Says once per process that attention dropout takes the dense formula, and its memory."""
    if _dropout_warned:
        return
    _dropout_warned.append(True)
    B, heads, L, _ = q.shape
    # Scores, bias, probabilities (float32) and the dropout mask, each (B, heads, L, L), live at
    # once in a layer's forward; autograd keeps about three of them per layer for backward.
    gib = B * heads * L * L * 4 * 4 / 2**30
    warnings.warn(
        f'LocAtViT: attention dropout ({dropout_p}) runs the dense GAug formula, which stores '
        f'the N x N scores: about {gib:.2f} GiB per layer for this batch ({B} x {heads} heads '
        f'x {L} x {L}, float32), far more than the memory-lean operator. Set the attention '
        'dropout (attn_drop_rate) to 0 to use the operator.')
