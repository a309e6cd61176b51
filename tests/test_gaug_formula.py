"""GAug against SPEC section 1, re-derived here independently of the package's code."""
import gc
import math

import numpy as np
import pytest
import torch

from locat_mm import LocAtViT
from locat_mm.layers import GaussianAugmentation, LocAtAttention
from locat_mm.ops import GaussianTerms, factor_product

import spec_reference


def spec_bias(s: np.ndarray, t: np.ndarray, grid, base_grid) -> np.ndarray:
    """SPEC section 1 in float64 for one head (tests/spec_reference.py): s (N, 2), t (N, 1)
    -> (N, N)."""
    return spec_reference.spec_bias(torch.from_numpy(s), torch.from_numpy(t), grid,
                                    base_grid).numpy()


def zero_gaug(head_dim: int, base_grid) -> GaussianAugmentation:
    gaug = GaussianAugmentation(head_dim, base_grid)
    for p in gaug.parameters():
        torch.nn.init.zeros_(p)
    return gaug


def both_biases(gaug: GaussianAugmentation, q: torch.Tensor, grid):
    with torch.no_grad():
        terms = GaussianTerms.build(*gaug(q, grid), grid, gaug.eps, gaug.dist_floor)
        return gaug.dense_bias(q, grid), factor_product(*terms.factors())


def test_zero_weights_on_base_grid():
    q = torch.randn(1, 1, 196, 64)
    for bias in both_biases(zero_gaug(64, (14, 14)), q, (14, 14)):
        b = bias[0, 0].reshape(14, 14, 14, 14)  # (query y, x, key y, x)
        assert b[5, 5, 5, 5].item() == pytest.approx(0.693147, abs=1e-6)
        assert b[5, 5, 5, 6].item() == pytest.approx(0.439966, abs=1e-6)
        assert b[5, 5, 4, 5].item() == pytest.approx(0.439966, abs=1e-6)
        assert b[5, 5, 6, 6].item() == pytest.approx(0.279262, abs=1e-6)
        assert b[5, 5, 5, 7].item() == pytest.approx(0.112512, abs=1e-6)


def test_zero_weights_at_larger_input():
    """A model built for 224 px (grid 14) running at 512 px (grid 32) widens its Gaussians."""
    q = torch.randn(1, 1, 32 * 32, 64)
    for bias in both_biases(zero_gaug(64, (14, 14)), q, (32, 32)):
        b = bias[0, 0].reshape(32, 32, 32, 32)
        assert b[10, 10, 10, 11].item() == pytest.approx(0.562090, abs=1e-6)
        assert b[10, 10, 10, 10].item() == pytest.approx(0.693147, abs=1e-6)


@pytest.mark.parametrize('grid,base_grid', [((14, 14), (14, 14)), ((6, 10), (14, 14)),
                                            ((32, 32), (14, 14)), ((40, 24), (14, 14)),
                                            ((13, 17), (14, 14)), ((8, 8), (64, 64))])
def test_random_weights_match_spec(grid, base_grid):
    torch.manual_seed(0)
    head_dim = 16
    gaug = GaussianAugmentation(head_dim, base_grid).double()
    with torch.no_grad():
        for p in gaug.parameters():
            p.normal_(0, 1.5)
    q = torch.randn(2, 3, grid[0] * grid[1], head_dim, dtype=torch.float64)
    with torch.no_grad():
        s = gaug.log_var(q).numpy()
        t = gaug.log_alpha(q).numpy()
    want = np.stack([[spec_bias(s[b, h], t[b, h], grid, base_grid) for h in range(3)]
                     for b in range(2)])
    for bias in both_biases(gaug, q, grid):
        np.testing.assert_allclose(bias.double().numpy(), want, rtol=2e-5, atol=1e-6)


def test_attention_matches_spec_with_prefix_tokens():
    """Prefix rows and columns get no bias; patch logits get B; softmax(qk/sqrt(c) + B) v."""
    torch.manual_seed(1)
    dim, heads, grid, prefix = 32, 2, (5, 7), 2
    attn = LocAtAttention(dim, heads, base_grid=(14, 14)).double().eval()
    with torch.no_grad():
        for p in attn.gaug.parameters():
            p.normal_(0, 1.0)
    x = torch.randn(2, prefix + grid[0] * grid[1], dim, dtype=torch.float64)
    with torch.no_grad():
        got = attn(x, grid, prefix).numpy()
        q, k, v = attn.qkv(x).reshape(2, -1, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        s = attn.gaug.log_var(q).numpy()
        t = attn.gaug.log_alpha(q).numpy()
    q, k, v = q.numpy(), k.numpy(), v.numpy()
    out = np.zeros_like(q)
    for b in range(2):
        for h in range(heads):
            bias = np.zeros((q.shape[2], q.shape[2]))
            bias[prefix:, prefix:] = spec_bias(s[b, h, prefix:], t[b, h, prefix:], grid,
                                               (14, 14))
            logits = q[b, h] @ k[b, h].T / math.sqrt(dim // heads) + bias
            weights = np.exp(logits - logits.max(-1, keepdims=True))
            out[b, h] = weights / weights.sum(-1, keepdims=True) @ v[b, h]
    merged = out.transpose(0, 2, 1, 3).reshape(2, -1, dim)
    want = merged @ attn.proj.weight.detach().numpy().T + attn.proj.bias.detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('arch', ['tiny', 'deit-small', 'base'])
def test_gaug_adds_2340_parameters(arch):
    def count(**kwargs) -> int:
        model = LocAtViT(arch, **kwargs)
        n = sum(p.numel() for p in model.parameters())
        del model
        gc.collect()  # its load hook is a reference cycle: free a ViT-B before the next
        return n

    assert count() - count(gaug=False) == 2340
    assert count(prr=False) == count()  # PRR has no parameters


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('side', [14, 32, 64])
def test_bias_finite_under_autocast(dtype, side):
    """A model built for grid 14 (224 px) stays finite at grids 14, 32 and 64 in half precision."""
    torch.manual_seed(0)
    model = LocAtViT(
        arch=dict(embed_dims=64, num_layers=1, num_heads=1, feedforward_channels=64),
        img_size=224,
        out_type='featmap').train()
    with torch.no_grad():
        for layer in model.layers:
            for p in layer.attn.gaug.parameters():
                p.normal_(0, 3.0)  # extreme variances and amplitudes
    x = torch.randn(1, 3, side * 16, side * 16)
    with torch.autocast('cpu', dtype=dtype):
        (out,) = model(x)
        q = torch.randn(1, 1, side * side, 64)
        bias = model.layers[0].attn.gaug.dense_bias(q, (side, side)).to(dtype)
    assert torch.isfinite(bias).all()
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
