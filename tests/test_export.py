"""Export, compilation and tracing with the default ``gaug_impl='auto'``: right or refusing.

A tiny LocAtViT built for 224 px with spread GAug weights (the bias then matters), run at its
own size and at a non-square size (320 x 480: grid 20 x 30, position embedding resized).
"""
import io

import pytest
import torch

from locat_mm import LocAtViT
from locat_mm.ops import DECOMPOSITIONS

SIZES = [(224, 224), (320, 480)]


@pytest.fixture(scope='module')
def model() -> LocAtViT:
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    torch.manual_seed(0)
    model = LocAtViT(arch, img_size=224, out_type='featmap')
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.5)
        for layer in model.layers:
            for p in layer.attn.gaug.parameters():
                p.normal_(0, 1.0)
    return model.eval()


def images(size, batch: int = 2, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(batch, 3, *size)


def test_gaug_matters_here(model):
    """Guards the tests below: without GAug the outputs differ far beyond their tolerances."""
    x = images(SIZES[1])
    with torch.no_grad():
        want = model(x)[0]
        saved = [layer.attn.gaug for layer in model.layers]
        for layer in model.layers:
            layer.attn.gaug = None
        try:
            plain = model(x)[0]
        finally:
            for layer, gaug in zip(model.layers, saved):
                layer.attn.gaug = gaug
    assert (plain - want).abs().max() > 1e-2


def test_torch_export_dynamic_shapes(model):
    """One program for every size (multiple of 16); the op stays one node, and decomposes."""
    h, w = torch.export.Dim('h', min=2, max=64), torch.export.Dim('w', min=2, max=64)
    program = torch.export.export(
        model, (images(SIZES[0]), ), dynamic_shapes={'x': {2: 16 * h, 3: 16 * w}})
    targets = [str(n.target) for n in program.graph.nodes if n.op == 'call_function']
    assert targets.count('locat.gaug_attention.default') == 2
    decomposed = program.run_decompositions(DECOMPOSITIONS)
    assert not any('locat' in str(n.target) for n in decomposed.graph.nodes)
    for size in SIZES:
        x = images(size)
        with torch.no_grad():
            want = model(x)[0]
            for exported in (program, decomposed):
                torch.testing.assert_close(exported.module()(x)[0], want, rtol=1e-5, atol=1e-5)


def test_exported_program_differentiates(model):
    program = torch.export.export(model, (images(SIZES[0]), ))
    exported = program.module()
    x = images(SIZES[0])
    exported(x)[0].square().sum().backward()
    model.zero_grad()
    model(x)[0].square().sum().backward()
    got = dict(exported.named_parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(got[name].grad, param.grad, rtol=1e-5, atol=1e-6, msg=name)
    model.zero_grad()


def test_compiled_training_step_has_no_graph_break(model):
    """``fullgraph=True`` raises at any graph break; gradients equal eager ones."""
    model.train()
    try:
        x = images(SIZES[1], seed=1)

        def loss_fn(inputs):
            return model(inputs)[0].square().mean()

        model.zero_grad()
        loss_fn(x).backward()
        want = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad()
        torch._dynamo.reset()
        # Forward and loss in one graph; AOTAutograd compiles the backward from it.
        torch.compile(loss_fn, backend='aot_eager', fullgraph=True)(x).backward()
        for name, param in model.named_parameters():
            torch.testing.assert_close(param.grad, want[name], rtol=1e-5, atol=1e-6, msg=name)
    finally:
        model.zero_grad()
        model.eval()
        torch._dynamo.reset()


def test_jit_trace_save_load(model):
    x = images(SIZES[1])
    with torch.no_grad():
        traced = torch.jit.trace(model, (x, ), check_trace=False)
    assert 'locat::gaug_attention' in str(traced.inlined_graph)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dynamo', [True, False], ids=['dynamo', 'legacy'])
@pytest.mark.parametrize('size', SIZES, ids=['224x224', '320x480'])
def test_onnx_matches_eager(model, tmp_path, dynamo, size):
    """Both exporters, run in onnxruntime: within 1e-4 of eager (the resize exports too)."""
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    if dynamo:
        pytest.importorskip('onnxscript')
    x = images(size)
    path = str(tmp_path / 'model.onnx')
    torch.onnx.export(model, (x, ), path, dynamo=dynamo, opset_version=17,
                      input_names=['x'], output_names=['featmap'])
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    (got, ) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model(x)[0].numpy()
    assert abs(got - want).max() <= 1e-4


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=['fused', 'aten'])
def test_operator_passes_opcheck(dtype):
    """``torch.library.opcheck`` of the operator and of its backward operator: schema, fake
    kernel (shapes and strides) against the real ones, autograd registration and AOT dispatch,
    on the fused CPU kernels (float32) and on the ATen chunks (float64)."""
    torch.manual_seed(0)
    grid, prefix = (3, 5), 2
    q, k, v = (torch.randn(2, 2, prefix + 15, 8, dtype=dtype, requires_grad=True)
               for _ in range(3))
    # Channels first, as GaussianAugmentation gives them: layouts other than the outputs'.
    var = (torch.rand(2, 2, 2, 15) * 4 + 0.5).requires_grad_()
    amp = torch.rand(1, 2, 2, 15).requires_grad_()
    var, amp = var.permute(1, 2, 3, 0), amp.permute(1, 2, 3, 0)
    # The operator takes the grid as the shape of the variances, (B, heads, H, W, 2).
    args = (q, k, v, var.unflatten(2, grid), amp, prefix, 0.1, -8.0)
    torch.library.opcheck(torch.ops.locat.gaug_attention.default, args)
    out = torch.ops.locat.gaug_attention(*args)
    # Laid out (B, L, heads, c): the attention layer merges the heads without a copy.
    assert out.transpose(1, 2).is_contiguous()
    # The backward operator (what compiled and exported training steps call) on its own.
    grad_out = torch.randn_like(out)
    backward_args = tuple(t.detach() if isinstance(t, torch.Tensor) else t
                          for t in (grad_out, q, k, v, out, *args[3:]))
    torch.library.opcheck(torch.ops.locat.gaug_attention_backward.default, backward_args)
