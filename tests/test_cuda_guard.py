"""The CUDA path's guards, simulated on the CPU: FlexAttention's head-width constraint, one
warning and the operator when compiling FlexAttention fails (or hits dynamo's recompile limit),
the ATen path's chunks over batch and heads, and the warning for attention dropout's dense path.
"""
import importlib
import warnings

import pytest
import torch

import locat_mm.ops.cuda as cuda
import locat_mm.ops.factored as factored
from locat_mm import LocAtViT
from locat_mm.ops import dense_gaug_attention, gaug_attention

OPERATOR_MODULE = importlib.import_module('locat_mm.ops.gaug_attention')
ATTENTION_MODULE = importlib.import_module('locat_mm.layers.attention')
ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=64)

needs_flex = pytest.mark.skipif(cuda.flex_attention is None, reason='no FlexAttention')


def tiny_model(**kwargs) -> LocAtViT:
    torch.manual_seed(0)
    model = LocAtViT(ARCH, img_size=64, out_type='featmap', output_cls_token=True,
                     toolbox='mmpretrain', **kwargs)
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.attn.gaug.parameters():
                p.normal_(0, 1.0)
    return model


@pytest.fixture
def simulated_cuda(monkeypatch):
    """FlexAttention calls take the compiled branch, as on a GPU; no failure recorded yet."""
    monkeypatch.setattr(cuda, '_runs_compiled', lambda q: True)
    monkeypatch.setattr(cuda, '_compile_failure', [])


def test_flex_head_dim_constraint(simulated_cuda):
    """Below 16 channels per head the CUDA kernel raises NYI: those heads get the operator."""
    assert not cuda.flex_head_dim_supported(8)
    assert cuda.flex_head_dim_supported(16) and cuda.flex_head_dim_supported(64)
    for width in (80, 88):  # arch 'h', 'eva-g'
        assert cuda.flex_head_dim_supported(width) == cuda._FLEX_ANY_HEAD_DIM
    if cuda.flex_attention is not None:
        with torch.no_grad():
            assert cuda.flex_supported(torch.zeros(1, 1, 4, 64))
            assert not cuda.flex_supported(torch.zeros(1, 1, 4, 8))


def _failing_compile():
    def compiled(*args):
        raise RuntimeError('simulated: Cannot find a working triton installation')

    return compiled


@needs_flex
def test_compile_failure_falls_back_with_one_warning(simulated_cuda, monkeypatch):
    monkeypatch.setattr(cuda, '_compiled_flex_gaug', _failing_compile)
    model = tiny_model(gaug_impl='flex').eval()
    reference = tiny_model(gaug_impl='dense').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        got = [model(x)[-1] for _ in range(2)]
        want = reference(x)[-1]
    messages = [str(w.message) for w in caught if 'FlexAttention' in str(w.message)]
    assert len(messages) == 1 and 'simulated: Cannot find a working triton' in messages[0]
    for outputs in got:
        for g, w in zip(outputs, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    q = torch.zeros(2, 2, 5, 32)
    assert model.layers[0].attn.gaug_path(q) == 'factored'


@needs_flex
def test_recompile_limit_falls_back_instead_of_eager_flex(simulated_cuda, monkeypatch):
    """Past dynamo's recompile limit the compiled call raises (it would otherwise run
    FlexAttention eagerly, scores stored): the operator takes over, with one warning."""
    compiled = torch.compile(cuda._flex_gaug, backend='eager', dynamic=True)
    monkeypatch.setattr(cuda, '_compiled_flex_gaug', lambda: compiled)
    torch._dynamo.reset()
    model = tiny_model(gaug_impl='flex').eval()
    x = torch.randn(2, 3, 64, 64)
    try:
        with torch._dynamo.config.patch(recompile_limit=1), torch.no_grad(), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            model(x)  # compiles once (float32)
            assert not cuda._compile_failure
            got = model.double()(x.double())[-1]  # float64 needs a recompile: over the limit
    finally:
        torch._dynamo.reset()
    messages = [str(w.message) for w in caught if 'FlexAttention' in str(w.message)]
    assert len(messages) == 1 and 'recompile' in messages[0].lower()
    reference = tiny_model(gaug_impl='dense').eval().double()
    with torch.no_grad():
        want = reference(x.double())[-1]
    # Both compute the bias in float32 (by its factors, or as one exponential).
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('shape', [(128, 12, 785), (256, 16, 1025), (3, 2, 31), (1, 1, 20000),
                                   (2, 3, 1500)])
@pytest.mark.parametrize('elements', [1 << 20, 1 << 22])
def test_chunks_bounded_and_cover_once(shape, elements):
    """A large batch no longer gives one-row chunks, hundreds per layer: at most
    3 * _MAX_CHUNKS chunks, each within the budget (or one row), covering every row once."""
    chunks = factored._chunks(shape, elements)
    B, heads, L = shape
    assert len(chunks) <= 3 * factored._MAX_CHUNKS
    budget = max(elements, -(-B * heads * L * L // factored._MAX_CHUNKS))
    seen = torch.zeros(shape, dtype=torch.int32)
    for b, h, rows in chunks:
        seen[b, h, rows] += 1
        size = factored._chunk_size((b, h, rows), shape)
        assert size <= budget or len(range(*rows.indices(L))) == 1
    assert bool((seen == 1).all())


@pytest.mark.parametrize('elements', [4000, 1000, 100], ids=['images', 'heads', 'rows'])
def test_chunked_aten_path_equals_formula(monkeypatch, elements):
    """Forward and backward of the ATen path, chunked by images, by heads and by rows, equal
    the unchunked passes and the dense formula (float64)."""
    monkeypatch.setattr(OPERATOR_MODULE, 'fused_cpu_ops', lambda *tensors: None)
    monkeypatch.setattr(factored, '_CHUNK_ELEMENTS', elements)
    monkeypatch.setattr(factored, '_FORWARD_CHUNK_ELEMENTS', elements)
    monkeypatch.setattr(factored, '_MAX_CHUNKS', 1 << 30)
    grid, prefix = (5, 6), 1
    B, heads, L, c = 3, 2, prefix + 30, 8
    assert len(factored._chunks((B, heads, L), elements)) > 1
    torch.manual_seed(0)
    inputs = [torch.randn(B, heads, L, c, dtype=torch.float64) for _ in range(3)]
    inputs += [torch.rand(B, heads, 30, 2, dtype=torch.float64) * 4 + 0.5,
               torch.rand(B, heads, 30, 1, dtype=torch.float64)]
    grad = torch.randn(B, heads, L, c, dtype=torch.float64)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = fn(*leaves, grid, prefix, 0.1, -8.0)
        out.backward(grad)
        return [out.detach()] + [t.grad for t in leaves]

    chunked = run(gaug_attention)
    dense = run(dense_gaug_attention)
    monkeypatch.setattr(factored, '_CHUNK_ELEMENTS', 1 << 30)
    monkeypatch.setattr(factored, '_FORWARD_CHUNK_ELEMENTS', 1 << 30)
    whole = run(gaug_attention)
    for got, one_chunk, want in zip(chunked, whole, dense):
        # The same sums in float64, only split: equal to rounding of the last bit.
        torch.testing.assert_close(got, one_chunk, rtol=1e-12, atol=1e-12)
        # The formula computes the bias in float32 (as one exponential, not two factors).
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_attention_dropout_warns_once_with_memory(monkeypatch):
    monkeypatch.setattr(ATTENTION_MODULE, '_dropout_warned', [])
    model = tiny_model(attn_drop_rate=0.1).train()
    x = torch.randn(2, 3, 64, 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model(x)
        model(x)
    messages = [str(w.message) for w in caught if 'attention dropout' in str(w.message)]
    assert len(messages) == 1
    # 2 images x 2 heads x 17 x 17 tokens, four float32 tensors of that size.
    gib = 2 * 2 * 17 * 17 * 4 * 4 / 2**30
    assert f'{gib:.2f} GiB' in messages[0] and 'attn_drop_rate' in messages[0]
    # The chosen dense formula itself ('dense') has nothing to warn about.
    monkeypatch.setattr(ATTENTION_MODULE, '_dropout_warned', [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tiny_model(attn_drop_rate=0.1, gaug_impl='dense').train()(x)
    assert not [w for w in caught if 'attention dropout' in str(w.message)]
