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


def tiny_model():
    from locat_mm.models.backbones.locat_vit import LocAtViT
    arch = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    torch.manual_seed(0)
    model = LocAtViT(arch, img_size=224)
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.attn.gaug.parameters():
                p.normal_(0, 0.5)
    return model.cuda().train()


@cuda
@pytest.mark.parametrize('dtype,bound', [(torch.bfloat16, 5e-2), (torch.float16, 1e-2)],
                         ids=['bf16', 'fp16'])
def test_amp_training_step_close_to_fp32(dtype, bound):
    """Loss and every gradient of an AMP step within ``bound`` (relative) of float32."""
    model = tiny_model()
    torch.manual_seed(1)
    images = torch.randn(4, 3, 224, 224, device='cuda')

    def step(amp: bool):
        model.zero_grad()
        with torch.autocast('cuda', dtype=dtype, enabled=amp):
            loss = model(images)[0].float().square().mean()
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in model.parameters()]

    want, got = step(False), step(True)
    names = ['loss'] + [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, got, want):
        assert torch.isfinite(a).all(), name
        assert relative_error(a, b) <= bound, name


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
