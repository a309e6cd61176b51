"""Export, compilation, tracing and FLOP counting of LocAtRoPEViT and LocAtJumbo, as
``tests/test_export.py`` and ``tests/test_flops.py`` check them for LocAtViT.

Tiny models built for 224 px with spread GAug weights (and RoPE frequencies, position
embedding) so that every part matters, run at 224 x 224 and at 320 x 480 (grid 20 x 30: RoPE
angles for the new grid, Jumbo's position embedding resized).
"""

import pytest
import torch
from mmengine.analysis import FlopAnalyzer

# The export tests of LocAtViT, collected here again: they run on this module's `model`
# fixture (each family).
from test_export import (SIZES, images, test_gaug_matters_here,  # noqa: F401
                         test_jit_trace_save_load, test_onnx_matches_eager,
                         test_torch_export_dynamic_shapes)

from locat_mm.engine.flops import ATTENTION_OPS
from locat_mm.models import LocAtJumbo, LocAtRoPEViT

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
FAMILIES = {'rope': LocAtRoPEViT, 'jumbo': LocAtJumbo}


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    # PyTorch's default Linear init (not the authors' 0.02): the attention branches matter.
    model = FAMILIES[name](ARCH, img_size=224, out_type='featmap', **kwargs)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if '.gaug.' in param_name or 'rope.freqs' in param_name:
                param.normal_(0, 1.0)
            elif param_name == 'pos_embed' or 'gamma' in param_name:
                param.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def model(request) -> torch.nn.Module:
    return build(request.param)


def test_compiled_training_step_has_no_graph_break(model):
    """``fullgraph=True`` raises at any graph break; gradients equal eager ones (the RoPE
    frequencies' and the shared jumbo MLP's included)."""
    model.train()
    try:
        x = images(SIZES[1], seed=1)

        def loss_fn(inputs):
            return model(inputs)[0].square().mean()

        model.zero_grad()
        loss_fn(x).backward()
        want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        assert any('rope.freqs' in n or 'jumbo_mlp' in n for n in want)
        model.zero_grad()
        torch._dynamo.reset()
        torch.compile(loss_fn, backend='aot_eager', fullgraph=True)(x).backward()
        for name, grad in want.items():
            torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad,
                                       rtol=1e-5, atol=1e-6, msg=name)
    finally:
        model.zero_grad()
        model.eval()
        torch._dynamo.reset()


@pytest.mark.parametrize('size', [(64, 64), (64, 96)])
@pytest.mark.parametrize('name', sorted(FAMILIES))
@pytest.mark.parametrize('locat', [True, False], ids=['locat', 'plain'])
def test_attention_flops_are_counted(name, locat, size):
    """mmengine counts every attention, B * heads * queries * L * 2c each (PRR: the P class
    tokens are its only queries), for LocAt and for the plain twin."""
    torch.manual_seed(0)
    model = FAMILIES[name](ARCH, img_size=64, gaug=locat, prr=locat).eval()
    prefix = model.num_extra_tokens
    L = prefix + (size[0] // 16) * (size[1] // 16)
    c = ARCH['embed_dims'] // ARCH['num_heads']
    queries = ARCH['num_layers'] * L + (prefix if locat else 0)
    by_op = FlopAnalyzer(model, (torch.randn(2, 3, *size), )).by_operator()
    assert sum(by_op[op.split('::')[1]] for op in ATTENTION_OPS) == \
        queries * 2 * ARCH['num_heads'] * L * 2 * c
