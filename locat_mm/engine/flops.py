"""FLOP counts of attention for mmengine's ``get_model_complexity_info`` (and mmseg's
``tools/analysis_tools/get_flops.py``, which calls it).

mmengine counts FLOPs by tracing the model with ``torch.jit`` and summing per-operator
handles; fused attention ops have none, so their matrix products went uncounted. Importing
this module (``import locat_mm`` does) adds handles to mmengine's default table for
``aten::scaled_dot_product_attention`` (the plain ViT baseline, PRR, mmpretrain's own ViT)
and ``locat::gaug_attention`` (LocAtViT's GAug attention operator). Both count what the dense
formula's two ``matmul`` nodes count, one multiply-add per FLOP as mmengine does:
``B * heads * L * S * (c + c_v)``. The GAug bias's elementwise work is not counted, like the
softmax and every other elementwise op.
"""
from math import prod
from typing import Any, List

from mmengine.analysis import complexity_analysis
from mmengine.analysis.jit_handles import get_shape


def attention_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``softmax(q k^T) v`` from the shapes of q (..., L, c), k (..., S, c) and
    v (..., S, c_v): the two matrix products."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


ATTENTION_OPS = ('aten::scaled_dot_product_attention', 'locat::gaug_attention')


def register_attention_flop_handles() -> None:
    """Adds :func:`attention_flop_jit` to mmengine's default handles (idempotent)."""
    for op in ATTENTION_OPS:
        complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS[op] = attention_flop_jit


register_attention_flop_handles()
