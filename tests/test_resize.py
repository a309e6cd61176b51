"""The exportable antialiased resize equals torch's ``_upsample_bi{cubic,linear}2d_aa``."""
import pytest
import torch
import torch.nn.functional as F

from locat_mm.layers import resize_pos_embed
from locat_mm.ops.resize import antialias_weights, resize_antialiased


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('src', [(14, 14), (7, 9)])
@pytest.mark.parametrize('dst', [(14, 14), (20, 30), (32, 43), (5, 3), (1, 1), (43, 7)])
def test_matches_torch_antialiased_interpolate(mode, src, dst):
    torch.manual_seed(0)
    grid = torch.randn(1, 8, *src)
    want = F.interpolate(grid, size=dst, mode=mode, antialias=True)
    got = resize_antialiased(grid, dst, mode)
    assert (got - want).abs().max() <= 2e-6 * want.abs().max()


def test_same_size_is_exactly_the_identity():
    assert torch.equal(antialias_weights(14, 14, 'bicubic'), torch.eye(14))


def test_pos_embed_resize_uses_it():
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 14 * 14, 16)
    got = resize_pos_embed(pos, (14, 14), (20, 30))
    grid = pos[:, 1:].reshape(1, 14, 14, 16).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(20, 30), mode='bicubic', antialias=True)
    torch.testing.assert_close(got[:, 1:], want.flatten(2).transpose(1, 2), rtol=0, atol=1e-5)
    assert torch.equal(got[:, :1], pos[:, :1])
