"""NaN and Inf: a non-finite value in one image makes that image's output NaN and leaves the other
images of the batch exactly as they are without it, on every GAug attention path.

Before the fused CPU kernels kept IEEE semantics (they were built with ``-ffast-math``, under
which the compiler may assume no NaN), a NaN query gave a finite output row there.
"""
import importlib

import pytest
import torch
from torch import Tensor

from locat_mm import LocAtViT
from locat_mm.ops import (GaussianTerms, dense_gaug_attention, flex_biased_attention,
                          gaug_attention)
from locat_mm.ops.cpu import fused_cpu_ops
from locat_mm.ops.cuda import flex_attention

GRID, PREFIX, EPS, FLOOR = (5, 6), 1, 0.1, -8.0
# The module (the package's attribute of that name is the function).
OPERATOR_MODULE = importlib.import_module('locat_mm.ops.gaug_attention')
BAD = 1  # the image that gets the non-finite value
PATHS = ['fused', 'aten', 'dense', 'flex']


@pytest.fixture(params=PATHS)
def path(request, monkeypatch) -> str:
    """The attention path under test; 'aten' is the operator with its fused kernels off."""
    if request.param == 'fused' and fused_cpu_ops(torch.zeros(1)) is None:
        pytest.skip('the fused CPU kernels cannot be built here')
    if request.param == 'flex' and flex_attention is None:
        pytest.skip('this torch has no FlexAttention')
    if request.param == 'aten':
        monkeypatch.setattr(OPERATOR_MODULE, 'fused_cpu_ops', lambda *tensors: None)
    return request.param


def attention(path: str, q, k, v, var, amp) -> Tensor:
    if path == 'dense':
        return dense_gaug_attention(q, k, v, var, amp, GRID, PREFIX, EPS, FLOOR)
    if path == 'flex':
        factors = GaussianTerms.build(var, amp, GRID, EPS, FLOOR).factors()
        return flex_biased_attention(q, k, v, *factors, PREFIX)
    return gaug_attention(q, k, v, var, amp, GRID, PREFIX, EPS, FLOOR)


def make_inputs(batch: int = 3):
    torch.manual_seed(0)
    B, heads, N, c = batch, 2, GRID[0] * GRID[1], 8
    q, k, v = (torch.randn(B, heads, PREFIX + N, c) for _ in range(3))
    return [q, k, v, torch.rand(B, heads, N, 2) * 4 + 0.5, torch.rand(B, heads, N, 1)]


NAN, INF = float('nan'), float('inf')
# (input, value, NaN rows of the bad image's first head). All values go to patch token 3 (row
# PREFIX + 3; the terms var, amp index patches only). A query or a GAug term poisons its own
# row; a key or value every row (all queries read it); an infinite score gives inf - inf in the
# softmax, so NaN too; an infinite amplitude an infinite bias, likewise.
CASES = [('q', NAN, 'row'), ('q', INF, 'row'), ('q', -INF, 'row'), ('k', NAN, 'all'),
         ('k', INF, 'all'), ('k', -INF, 'all'), ('v', NAN, 'all'), ('var', NAN, 'row'),
         ('amp', NAN, 'row'), ('amp', INF, 'row')]
INPUTS = ('q', 'k', 'v', 'var', 'amp')


@pytest.mark.parametrize('where,value,rows', CASES,
                         ids=[f'{w}-{v}' for w, v, _ in CASES])
def test_operator_contains_nonfinite(path, where, value, rows):
    index = INPUTS.index(where)
    inputs = make_inputs()
    clean = [t[[0, 2]] for t in inputs]
    inputs[index][BAD, 0, PREFIX + 3 if index < 3 else 3] = value
    with torch.no_grad():
        out = attention(path, *inputs)
        want = attention('dense', *clean)
    # The other images: exactly what they give without the bad one (the dense formula).
    torch.testing.assert_close(out[[0, 2]], want, rtol=1e-5, atol=1e-6)
    expected = torch.full((out.shape[2], ), rows == 'all')
    expected[PREFIX + 3] = True
    bad = out[BAD, 0]
    assert torch.equal(bad.isnan().all(-1), expected), \
        f'NaN rows {bad.isnan().all(-1).nonzero().flatten().tolist()}'
    assert bad[~expected].isfinite().all()


def test_backward_contains_nan(path):
    """Gradients reaching the other images stay finite and equal their own (fused, ATen, dense
    paths; FlexAttention on the CPU has no backward)."""
    if path == 'flex':
        pytest.skip('FlexAttention runs no backward pass on the CPU')
    inputs = make_inputs()
    inputs[0][BAD, 0, PREFIX + 3] = float('nan')
    clean = [t[[0, 2]].clone().requires_grad_() for t in inputs]
    inputs = [t.requires_grad_() for t in inputs]
    grad = torch.randn(3, 2, PREFIX + GRID[0] * GRID[1], 8)
    attention(path, *inputs).backward(grad)
    dense = attention('dense', *clean)
    dense.backward(grad[[0, 2]])
    for t, ref in zip(inputs, clean):
        torch.testing.assert_close(t.grad[[0, 2]], ref.grad, rtol=1e-4, atol=1e-5)
        assert t.grad[BAD].isnan().any()


IMPLS = {'fused': 'auto', 'aten': 'factored', 'dense': 'dense', 'flex': 'flex'}


@pytest.mark.parametrize('value', [float('nan'), float('inf')], ids=['nan', 'inf'])
def test_model_contains_nonfinite_image(path, value):
    """One non-finite pixel: that image's class token and feature map are NaN (an Inf pixel
    becomes inf - inf in the patch projection or the norms), the others unchanged."""
    torch.manual_seed(0)
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    model = LocAtViT(arch, img_size=64, out_type='featmap', output_cls_token=True,
                     toolbox='mmpretrain', gaug_impl=IMPLS[path]).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        want = model(x[[0, 2]])[-1]
        x[BAD, 1, 20, 30] = value
        got = model(x)[-1]
    for g, w in zip(got, want):
        torch.testing.assert_close(g[[0, 2]], w, rtol=1e-5, atol=1e-5)
        assert g[BAD].isnan().all()
