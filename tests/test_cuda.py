"""CUDA checks of the default GAug path (FlexAttention), run by ``tools/gpu_check.sh``.

Skipped without a GPU. They need torch (with triton) and this package only. The oracle is the
dense formula (``gaug_impl='dense'``) with the same weights, in float32.
"""
from typing import List, Tuple

import pytest
import torch

from locat_mm.layers.attention import LocAtAttention

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')

HEADS, HEAD_DIM = 2, 32
BASE_GRID = (14, 14)


def layer_pair(seed: int = 0) -> Tuple[LocAtAttention, LocAtAttention]:
    """An ``auto`` layer with spread GAug weights and a dense one with the same weights."""
    torch.manual_seed(seed)
    fast = LocAtAttention(HEADS * HEAD_DIM, HEADS, BASE_GRID)
    with torch.no_grad():
        for p in fast.gaug.parameters():
            p.normal_(0, 1.0)
    dense = LocAtAttention(HEADS * HEAD_DIM, HEADS, BASE_GRID, gaug_impl='dense')
    dense.load_state_dict(fast.state_dict())
    return fast.cuda().train(), dense.cuda().train()


def outputs_and_grads(layer: LocAtAttention, x: torch.Tensor, grid, prefix: int) -> List:
    x = x.detach().requires_grad_()
    out = layer(x, grid, prefix)
    torch.manual_seed(7)
    grads = torch.autograd.grad(out, [x] + list(layer.parameters()), torch.randn_like(out))
    return [out.detach()] + list(grads)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest error relative to the tensor's largest entry."""
    return ((got.float() - want.float()).abs().max() / want.float().abs().max()).item()


@cuda
@pytest.mark.parametrize('prefix', [1, 5])
@pytest.mark.parametrize('grid', [(14, 14), (32, 32), (32, 43)])
def test_auto_path_matches_dense_fp32(grid, prefix):
    """Forward and every gradient (input, qkv, projection, GAug maps) in float32."""
    fast, dense = layer_pair(seed=grid[1] + prefix)
    x = torch.randn(2, prefix + grid[0] * grid[1], HEADS * HEAD_DIM, device='cuda')
    q = torch.zeros(1, HEADS, 1, HEAD_DIM, device='cuda', requires_grad=True)
    assert fast.gaug_path(q) == 'flex'
    got = outputs_and_grads(fast, x, grid, prefix)
    want = outputs_and_grads(dense, x, grid, prefix)
    names = ['output', 'x'] + [n for n, _ in fast.named_parameters()]
    for name, a, b in zip(names, got, want):
        tol = 1e-4 if 'gaug' in name else 1e-5
        assert relative_error(a, b) <= tol, name


# Relative bounds of an AMP step against float32 (output, loss, every gradient).
AMP_BOUNDS = {torch.bfloat16: 5e-2, torch.float16: 1e-2}
# GAug must move the checked output and loss by this many times the loosest bound, so that an
# AMP path that dropped the bias could not pass.
GAUG_MARGIN = 4


def tiny_model(device: str = 'cuda'):
    """Two layers at 224 px returning the patch features (GAug biases patch queries only) with
    GAug weights of unit scale: measured in float32, GAug moves the output by 37% and the
    read-out loss by 39% (zero amplitude against these weights)."""
    from locat_mm.models.backbones.locat_vit import LocAtViT
    arch = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    torch.manual_seed(0)
    model = LocAtViT(arch, img_size=224, out_type='featmap')
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.attn.gaug.parameters():
                p.normal_(0, 1.0)
    return model.to(device).train()


def training_step(model, dtype=None) -> dict:
    """Output, loss (a fixed random read-out of the output: a squared norm after the final
    LayerNorm would hardly depend on anything) and every gradient of one step, under
    ``autocast(dtype)`` (None: float32)."""
    device = next(model.parameters()).device
    torch.manual_seed(1)
    images = torch.randn(4, 3, 224, 224, device=device)
    model.zero_grad()
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = model(images)[0].float()
    readout = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(device)
    loss = (out * readout).sum()
    loss.backward()
    return {'output': out.detach(), 'loss': loss.detach(),
            **{n: p.grad.clone() for n, p in model.named_parameters()}}


def test_gaug_moves_the_amp_step_beyond_its_bounds():
    """Runs anywhere (float32): with GAug's amplitude zeroed the output and loss move by more
    than GAUG_MARGIN times the AMP bounds, so the CUDA test below can see a lost bias."""
    model = tiny_model('cpu')
    want = training_step(model)
    with torch.no_grad():
        for layer in model.layers:
            layer.attn.gaug.log_alpha.weight.zero_()
            layer.attn.gaug.log_alpha.bias.fill_(-100.0)  # softplus(-100) ~ 0
    got = training_step(model)
    for name in ('output', 'loss'):
        assert relative_error(got[name], want[name]) > GAUG_MARGIN * max(AMP_BOUNDS.values())


@cuda
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_amp_training_step_close_to_fp32(dtype):
    """Output, loss and every gradient of an AMP step within ``AMP_BOUNDS`` (relative) of
    float32."""
    model = tiny_model()
    want, got = training_step(model), training_step(model, dtype)
    assert got.keys() == want.keys()
    for name, a in got.items():
        assert torch.isfinite(a).all(), name
        assert relative_error(a, want[name]) <= AMP_BOUNDS[dtype], name


@cuda
def test_compilations_bounded_over_five_sizes():
    """Whole-image evaluation at 5 sizes compiles the fused kernel a bounded number of times."""
    from torch._dynamo.utils import counters
    model = tiny_model().eval()
    torch._dynamo.reset()
    counters.clear()
    with torch.no_grad():
        for size in [(224, 224), (256, 320), (320, 480), (512, 512), (384, 224)]:
            model(torch.randn(1, 3, *size, device='cuda'))
    assert counters['stats']['unique_graphs'] <= 3, dict(counters['stats'])
