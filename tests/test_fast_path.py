"""The fast GAug attention paths (factored, FlexAttention) against the dense formulation.

The dense path (``GaussianAugmentation.dense_bias`` + ``dense_biased_attention``) writes the
formula out with an (N, N, 2) distance tensor; it is the oracle here. Model-level finiteness
under half-precision autocast (a model built for 224 px at grids 14, 32, 64) is covered by
``test_gaug_formula.py::test_bias_finite_under_autocast``; this file checks the attention
kernels themselves.
"""
from typing import Callable, List, Sequence, Tuple

import pytest
import torch
import torch.nn.attention.flex_attention as torch_flex
import torch.nn.functional as F
from torch import Tensor

from locat_mm import LocAtViT
from locat_mm.layers import GaussianAugmentation, LocAtAttention
from locat_mm.layers import attention as transformer_module
from locat_mm.ops import cuda as flex_module
from locat_mm.ops import dense_biased_attention, factored_biased_attention
from locat_mm.ops.cuda import flex_biased_attention, flex_supported

BASE_GRID = (14, 14)  # a model built for 224 px
HEAD_DIM = 16
Grid = Tuple[int, int]


def spread_gaug(seed: int, std: float = 1.0) -> GaussianAugmentation:
    """GAug whose weights make variances and amplitudes differ widely between queries."""
    torch.manual_seed(seed)
    gaug = GaussianAugmentation(HEAD_DIM, BASE_GRID)
    with torch.no_grad():
        for p in gaug.parameters():
            p.normal_(0, std)
    return gaug


def random_qkv(grid: Grid, prefix: int, seed: int, batch: int = 2,
               heads: int = 2) -> List[Tensor]:
    torch.manual_seed(seed)
    shape = (batch, heads, prefix + grid[0] * grid[1], HEAD_DIM)
    return [torch.randn(shape, requires_grad=True) for _ in range(3)]


def dense_path(gaug: GaussianAugmentation, q: Tensor, k: Tensor, v: Tensor, grid: Grid,
               prefix: int) -> Tensor:
    return dense_biased_attention(q, k, v, gaug.dense_bias(q[:, :, prefix:], grid), prefix)


def factored_path(gaug: GaussianAugmentation, q: Tensor, k: Tensor, v: Tensor, grid: Grid,
                  prefix: int) -> Tensor:
    return factored_biased_attention(q, k, v, gaug.terms(q, grid, prefix), prefix)


def flex_path(gaug: GaussianAugmentation, q: Tensor, k: Tensor, v: Tensor, grid: Grid,
              prefix: int) -> Tensor:
    return flex_biased_attention(q, k, v, *gaug(q[:, :, prefix:], grid), prefix)


def output_and_grads(path: Callable[..., Tensor], gaug: GaussianAugmentation,
                     qkv: Sequence[Tensor], grid: Grid, prefix: int) -> List[Tensor]:
    """[output, d q, d k, d v, d GAug parameters...] for a fixed random output gradient."""
    out = path(gaug, *qkv, grid, prefix)
    torch.manual_seed(123)
    inputs = list(qkv) + list(gaug.parameters())
    grad_out = torch.randn(out.shape).to(out)
    return [out.detach()] + list(torch.autograd.grad(out, inputs, grad_out))


def assert_close_scaled(got: Tensor, want: Tensor, tol: float = 1e-5, msg: str = '') -> None:
    """Max abs error <= ``tol`` times the largest entry of ``want`` (at least 1).

    Float32 gradients of long sums are accurate relative to the tensor's scale, not
    entry by entry (a small entry can be the difference of large terms).
    """
    scale = max(1.0, want.abs().max().item())
    torch.testing.assert_close(got, want, rtol=0, atol=tol * scale, msg=msg)


def assert_all_close(names: Sequence[str], got: Sequence[Tensor],
                     want: Sequence[Tensor]) -> None:
    """Float32 agreement of outputs and gradients, named for the error message.

    Gradients of GAug's parameters (names containing ``gaug``) are sums over
    B * heads * N^2 score gradients that largely cancel; their float32 error reaches ~2e-5 of
    their largest entry for either path (measured against float64): compared at 1e-4.
    """
    assert len(names) == len(got) == len(want)
    for name, a, b in zip(names, got, want):
        assert_close_scaled(a, b, 1e-4 if 'gaug' in name else 1e-5, msg=name)


def kernel_names(gaug: GaussianAugmentation) -> List[str]:
    return ['output', 'q', 'k', 'v'] + [f'gaug.{n}' for n, _ in gaug.named_parameters()]


@pytest.mark.parametrize('prefix', [0, 1, 2])
@pytest.mark.parametrize('grid', [(14, 14), (32, 32), (32, 43)])
def test_factored_matches_dense(grid, prefix):
    """Forward and gradients of q, k, v and GAug's weights, at and beyond grid 32."""
    gaug = spread_gaug(seed=grid[1] + prefix)
    qkv = random_qkv(grid, prefix, seed=prefix)
    want = output_and_grads(dense_path, gaug, qkv, grid, prefix)
    got = output_and_grads(factored_path, gaug, qkv, grid, prefix)
    assert_all_close(kernel_names(gaug), got, want)


def test_prefix_rows_and_columns_get_no_bias():
    """Prefix queries attend as in plain attention; patch queries see prefix keys unbiased."""
    grid, prefix = (5, 7), 2
    gaug = spread_gaug(seed=3, std=2.0)
    q, k, _ = random_qkv(grid, prefix, seed=3)
    # Value j = one-hot(j) for the prefix keys, 0 for patches: output[..., :P] is then the
    # attention weight on each prefix key.
    v = torch.zeros_like(q)
    v[..., :prefix, :prefix] = torch.eye(prefix)
    out = factored_path(gaug, q, k, v, grid, prefix).detach()

    plain = F.scaled_dot_product_attention(q[:, :, :prefix], k, v)
    torch.testing.assert_close(out[:, :, :prefix], plain, rtol=1e-6, atol=1e-6)

    scores = q @ k.transpose(-2, -1) * HEAD_DIM**-0.5
    patch_scores = scores[:, :, prefix:]
    biased = patch_scores[..., prefix:] + gaug.dense_bias(q[:, :, prefix:], grid)
    weights = torch.cat([patch_scores[..., :prefix], biased], dim=-1).softmax(-1)
    torch.testing.assert_close(out[:, :, prefix:, :prefix], weights[..., :prefix].detach(),
                               rtol=1e-5, atol=1e-6)


def layer_pair(impl: str, seed: int = 0) -> Tuple[LocAtAttention, LocAtAttention]:
    """A LocAtAttention with ``impl`` and a dense one with the same (spread) weights."""
    torch.manual_seed(seed)
    fast = LocAtAttention(2 * HEAD_DIM, 2, BASE_GRID, gaug_impl=impl)
    with torch.no_grad():
        for p in fast.gaug.parameters():
            p.normal_(0, 1.0)
    dense = LocAtAttention(2 * HEAD_DIM, 2, BASE_GRID, gaug_impl='dense')
    dense.load_state_dict(fast.state_dict())
    return fast, dense


def layer_names(layer: LocAtAttention) -> List[str]:
    return ['output', 'x'] + [n for n, _ in layer.named_parameters()]


def layer_output_and_grads(layer: LocAtAttention, x: Tensor, grid: Grid,
                           prefix: int) -> List[Tensor]:
    x = x.detach().requires_grad_()
    out = layer(x, grid, prefix)
    torch.manual_seed(7)
    grads = torch.autograd.grad(out, [x] + list(layer.parameters()), torch.randn_like(out))
    return [out.detach()] + list(grads)


def test_layer_in_training_mode_matches_dense_beyond_grid_32():
    """No 2x2 block approximation at grid >= 32 in training (the reference has one)."""
    fast, dense = layer_pair('factored')
    grid, prefix = (32, 36), 1
    x = torch.randn(2, prefix + grid[0] * grid[1], 2 * HEAD_DIM)
    got = layer_output_and_grads(fast.train(), x, grid, prefix)
    want = layer_output_and_grads(dense.train(), x, grid, prefix)
    assert_all_close(layer_names(fast), got, want)


@pytest.mark.parametrize('side', [14, 32, 64])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_factored_finite_under_autocast(dtype, side):
    """Extreme GAug weights, half-precision q/k/v, a 224-px GAug at grids up to 64."""
    gaug = spread_gaug(seed=side, std=3.0)
    proj = torch.nn.Linear(HEAD_DIM, 3 * HEAD_DIM)
    torch.manual_seed(side)
    x = torch.randn(1, 1, 1 + side * side, HEAD_DIM, requires_grad=True)
    with torch.autocast('cpu', dtype=dtype):
        q, k, v = proj(x).chunk(3, dim=-1)
        assert q.dtype == dtype
        out = factored_path(gaug, q, k, v, (side, side), 1)
    assert out.dtype == dtype and torch.isfinite(out).all()
    grads = torch.autograd.grad(out.float().square().mean(),
                                [x] + list(gaug.parameters()) + list(proj.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


def test_full_model_factored_equals_dense_in_training():
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    torch.manual_seed(0)
    fast = LocAtViT(arch, img_size=64, gaug_impl='factored')
    with torch.no_grad():
        fast.pos_embed.normal_(0, 0.02)
        fast.cls_token.normal_(0, 0.02)
        for layer in fast.layers:
            for p in layer.attn.gaug.parameters():
                p.normal_(0, 1.0)
    dense = LocAtViT(arch, img_size=64, gaug_impl='dense')
    dense.load_state_dict(fast.state_dict())
    images = torch.randn(2, 3, 96, 80)  # grid 6 x 5, not the built-for 4 x 4
    results = []
    for model in (fast.train(), dense.train()):
        (out,) = model(images)
        out.square().sum().backward()
        results.append([out.detach()] + [p.grad for p in model.parameters()])
    names = ['output'] + [n for n, _ in fast.named_parameters()]
    assert_all_close(names, *results)


# ---------------------------------------------------------------------- FlexAttention
@pytest.mark.parametrize('prefix', [0, 1])
def test_flex_forward_matches_dense_on_cpu(prefix):
    """CPU runs FlexAttention eagerly (unfused) when no gradient is needed."""
    grid = (5, 7)
    gaug = spread_gaug(seed=prefix)
    qkv = [t.detach() for t in random_qkv(grid, prefix, seed=prefix)]
    with torch.no_grad():
        assert flex_supported(*qkv, *gaug(qkv[0][:, :, prefix:], grid))
        got = flex_path(gaug, *qkv, grid, prefix)
        want = dense_path(gaug, *qkv, grid, prefix)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_flex_gradients_match_dense(monkeypatch):
    """Gradients of q, k, v and, through the captured factors, of GAug's weights.

    torch's public ``flex_attention`` refuses a backward pass off CUDA, yet its eager
    implementation computes one; the device guard is lifted here only, to check this score
    function's gradients on CPU. ``test_flex_on_cuda`` runs the real fused kernel.
    """
    monkeypatch.setattr(torch_flex, '_validate_device', lambda *tensors: None)
    grid, prefix = (4, 5), 1
    gaug = spread_gaug(seed=5)
    qkv = random_qkv(grid, prefix, seed=5)
    want = output_and_grads(dense_path, gaug, qkv, grid, prefix)
    got = output_and_grads(flex_path, gaug, qkv, grid, prefix)
    assert_all_close(kernel_names(gaug), got, want)


def test_flex_supported_only_where_torch_runs_it(monkeypatch):
    q = torch.randn(1, 1, 5, HEAD_DIM)
    assert flex_supported(q)
    assert not flex_supported(q.requires_grad_())
    with torch.no_grad():
        assert flex_supported(q)
        monkeypatch.setattr(flex_module, 'flex_attention', None)
        assert not flex_supported(q)


def test_flex_impl_runs_flex_where_supported_else_factored(monkeypatch):
    """``gaug_impl='flex'`` calls FlexAttention when it can, else the factored kernel."""
    calls = []

    def spy(*args):
        calls.append(args[0].shape)
        return flex_biased_attention(*args)

    monkeypatch.setattr(transformer_module, 'flex_biased_attention', spy)
    arch = dict(embed_dims=2 * HEAD_DIM, num_layers=2, num_heads=2, feedforward_channels=64)
    torch.manual_seed(1)
    flex = LocAtViT(arch, img_size=64, gaug_impl='flex', out_type='raw')
    dense = LocAtViT(arch, img_size=64, gaug_impl='dense', out_type='raw')
    dense.load_state_dict(flex.state_dict())
    images = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        (got,) = flex.eval()(images)
        (want,) = dense.eval()(images)
    assert len(calls) == 2
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

    calls.clear()
    (got,) = flex.train()(images)  # CPU backward: FlexAttention cannot, factored does
    assert not calls
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='fused FlexAttention needs CUDA')
def test_flex_on_cuda():
    """The compiled kernel: forward and gradients vs dense, and finite under bf16 autocast."""
    fast, dense = layer_pair('flex')
    fast, dense = fast.cuda().train(), dense.cuda().train()
    grid, prefix = (14, 14), 1
    x = torch.randn(2, prefix + grid[0] * grid[1], 2 * HEAD_DIM, device='cuda')
    got = layer_output_and_grads(fast, x, grid, prefix)
    want = layer_output_and_grads(dense, x, grid, prefix)
    assert_all_close(layer_names(fast), got, want)

    grid = (64, 64)
    x = torch.randn(1, prefix + grid[0] * grid[1], 2 * HEAD_DIM, device='cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = fast(x, grid, prefix)
    grads = torch.autograd.grad(out.float().square().mean(), list(fast.parameters()))
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
