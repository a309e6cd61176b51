"""The compiled CPU passes of the factored attention, and the ATen path that stands in for them."""
import importlib

import pytest
import torch

import locat_mm.ops.factored as attention
from locat_mm.ops.cpu import blocked
from locat_mm.layers import GaussianAugmentation
from locat_mm.ops import dense_biased_attention, gaug_attention
from locat_mm.ops.cpu import extension_name, fused_cpu_ops

from test_fast_path import assert_all_close

# The module (``locat_mm.ops.gaug_attention`` the attribute is the function of that name).
operator = importlib.import_module('locat_mm.ops.gaug_attention')


def test_extension_builds_here():
    """On the machines this project runs on (x86-64, gcc) the fused passes must be there."""
    assert fused_cpu_ops(torch.zeros(1)) is not None
    assert fused_cpu_ops(torch.zeros(1, dtype=torch.float64)) is None


def test_extension_name_carries_a_source_hash():
    """Worktrees with other sources share ~/.cache/torch_extensions: never the same name."""
    name = extension_name()
    assert name.startswith('locat_gaug_cpu_') and len(name) == len('locat_gaug_cpu_') + 12
    assert fused_cpu_ops(torch.zeros(1)).__name__ == name


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('grid,prefix,chunk', [((6, 9), 1, 1 << 20), ((5, 7), 0, 100),
                                               ((4, 6), 2, 60), ((8, 11), 1, 300)])
def test_matches_dense_formulation(monkeypatch, fused, grid, prefix, chunk):
    """Chunked forward and backward, with or without the compiled passes, equal the formula."""
    if not fused:
        monkeypatch.setattr(operator, 'fused_cpu_ops', lambda *tensors: None)
    monkeypatch.setattr(attention, '_CHUNK_ELEMENTS', chunk)
    monkeypatch.setattr(attention, '_FORWARD_CHUNK_ELEMENTS', chunk)
    torch.manual_seed(grid[1] + prefix)
    gaug = GaussianAugmentation(16, (14, 14))
    with torch.no_grad():
        for p in gaug.parameters():
            p.normal_(0, 2.0)
    length = prefix + grid[0] * grid[1]
    q, k, v = (torch.randn(2, 2, length, 16, requires_grad=True) for _ in range(3))
    upstream = torch.randn(2, 2, length, 16)

    def run(factored: bool):
        for t in (q, k, v, *gaug.parameters()):
            t.grad = None
        if factored:
            out = gaug_attention(q, k, v, *gaug(q, grid, prefix), grid, prefix, gaug.eps,
                                 gaug.dist_floor)
        else:
            out = dense_biased_attention(q, k, v, gaug.dense_bias(q[:, :, prefix:], grid),
                                         prefix)
        (out * upstream).sum().backward()
        return [out.detach()] + [t.grad.clone() for t in (q, k, v, *gaug.parameters())]

    names = ['output', 'q', 'k', 'v'] + [f'gaug.{n}' for n, _ in gaug.named_parameters()]
    assert_all_close(names, run(True), run(False))


@pytest.mark.parametrize('block_rows', [1, 7, 128])
@pytest.mark.parametrize('grid,prefix', [((5, 7), 0), ((4, 6), 1), ((3, 8), 5), ((1, 5), 1)])
def test_blocked_forward_matches_dense_formula(monkeypatch, block_rows, grid, prefix):
    """The fused forward (scores, bias and softmax block by block of query rows) on strided
    q, k, v, with blocks that split the prefix rows and leave a short last block, equals the
    formula in float64; so do all gradients taken through it."""
    monkeypatch.setattr(blocked, 'FORWARD_BLOCK_ROWS', block_rows)
    monkeypatch.setattr(blocked, 'BACKWARD_BLOCK_ROWS', block_rows)
    torch.manual_seed(block_rows + prefix)
    gaug = GaussianAugmentation(16, (14, 14))
    with torch.no_grad():
        for p in gaug.parameters():
            p.normal_(0, 2.0)
    length = prefix + grid[0] * grid[1]
    # Scores spread over about +-40: the softmax's exponentials see a wide range.
    qkv = (torch.randn(2, length, 3, 2, 16) * 3).requires_grad_()
    upstream = torch.randn(2, 2, length, 16)

    def run(fused: bool):
        qkv.grad = None
        for p in gaug.parameters():
            p.grad = None
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # strided views, as in the layer
        if fused:
            out = gaug_attention(q, k, v, *gaug(q, grid, prefix), grid, prefix, gaug.eps,
                                 gaug.dist_floor)
        else:
            bias = gaug.dense_bias(q[:, :, prefix:], grid).double()
            out = dense_biased_attention(q.double(), k.double(), v.double(), bias, prefix)
        (out * upstream).sum().backward()
        return [out.detach().float()] + [t.grad.clone() for t in (qkv, *gaug.parameters())]

    names = ['output', 'qkv'] + [f'gaug.{n}' for n, _ in gaug.named_parameters()]
    assert_all_close(names, run(True), run(False))


def test_fused_forward_is_the_cpu_path(monkeypatch):
    """Float32 CPU inputs take the blocked kernel (not the masked scaled-dot-product one)."""
    calls = []
    monkeypatch.setattr(attention.F, 'scaled_dot_product_attention',
                        lambda *args, **kwargs: calls.append(1))
    q = torch.randn(1, 2, 13, 8)
    gaug = GaussianAugmentation(8, (14, 14))
    out = gaug_attention(q, q, q, *gaug(q, (3, 4), 1), (3, 4), 1, gaug.eps, gaug.dist_floor)
    assert not calls and torch.isfinite(out).all()
