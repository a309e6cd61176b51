"""The compiled CPU passes of the factored attention, and the ATen path that stands in for them."""
import pytest
import torch

import locat_mm.ops.factored as attention
from locat_mm.layers import GaussianAugmentation
from locat_mm.ops import dense_biased_attention
from locat_mm.ops.cpu import fused_cpu_ops


def test_extension_builds_here():
    """On the machines this project runs on (x86-64, gcc) the fused passes must be there."""
    assert fused_cpu_ops(torch.zeros(1)) is not None
    assert fused_cpu_ops(torch.zeros(1, dtype=torch.float64)) is None


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('grid,prefix,chunk', [((6, 9), 1, 1 << 20), ((5, 7), 0, 100),
                                               ((4, 6), 2, 60), ((8, 11), 1, 300)])
def test_matches_dense_formulation(monkeypatch, fused, grid, prefix, chunk):
    """Chunked forward and backward, with or without the compiled passes, equal the formula."""
    if not fused:
        monkeypatch.setattr(attention, 'fused_cpu_ops', lambda *tensors: None)
    monkeypatch.setattr(attention, '_CHUNK_ELEMENTS', chunk)
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
            out = attention.factored_biased_attention(q, k, v, gaug.terms(q, grid, prefix),
                                                      prefix)
        else:
            out = dense_biased_attention(q, k, v, gaug.dense_bias(q[:, :, prefix:], grid),
                                         prefix)
        (out * upstream).sum().backward()
        return [out.detach()] + [t.grad.clone() for t in (q, k, v, *gaug.parameters())]

    for got, want in zip(run(True), run(False)):
        scale = want.abs().max().item()
        assert (got - want).abs().max().item() <= 1e-5 * max(scale, 1.0)
