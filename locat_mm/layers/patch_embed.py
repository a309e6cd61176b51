"""Patch embedding with padding, and position-embedding resizing."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def resize_pos_embed(pos_embed: Tensor,
                     src_shape: Tuple[int, int],
                     dst_shape: Tuple[int, int],
                     mode: str = 'bicubic',
                     num_extra_tokens: int = 1) -> Tensor:
    """Resizes a (1, P + H*W, C) position embedding to another patch grid.

    Prefix tokens keep their embedding. Bicubic and bilinear resizing are antialiased, as in the
    reference (timm's ``resample_abs_pos_embed``); note that this also changes upsampling, whose
    antialiased cubic kernel differs from the plain one.

    Args:
        pos_embed (Tensor): (1, P + H*W, C).
        src_shape (tuple[int, int]): Grid (H, W) of ``pos_embed``.
        dst_shape (tuple[int, int]): Grid to resize to.
        mode (str): ``F.interpolate`` mode.
        num_extra_tokens (int): P.

    Returns:
        Tensor: (1, P + H'*W', C) in the dtype of ``pos_embed``.
    """
    src_shape, dst_shape = tuple(src_shape), tuple(dst_shape)
    if src_shape == dst_shape:
        return pos_embed
    _, length, channels = pos_embed.shape
    if length != src_shape[0] * src_shape[1] + num_extra_tokens:
        raise ValueError(
            f'pos_embed has {length} tokens, but a {src_shape[0]}x{src_shape[1]} grid with '
            f'{num_extra_tokens} prefix token(s) needs '
            f'{src_shape[0] * src_shape[1] + num_extra_tokens}: check `img_size`, '
            '`patch_size` and `with_cls_token` against the checkpoint.')
    prefix, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, *src_shape, channels).permute(0, 3, 1, 2)
    antialias = mode in ('bilinear', 'bicubic')
    grid = F.interpolate(grid.float(), size=dst_shape, mode=mode, antialias=antialias)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


class PadPatchEmbed(nn.Module):
    """Splits an image into patches with a strided convolution (with bias).

    Inputs whose sides are not multiples of the patch size are zero-padded at the bottom and
    right first, as the reference does with a dynamic image size.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Output channels.
        patch_size (int): Side of a square patch.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.projection = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, C_in, H, W) -> tokens (B, H'*W', C) and the grid (H', W'), H' = ceil(H / p)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'expected images of shape (B, {self.in_channels}, H, W), got '
                f'{tuple(x.shape)}; set `in_channels` to match the data.')
        p = self.patch_size
        pad_h, pad_w = -x.shape[2] % p, -x.shape[3] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.projection(x)
        grid = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), grid
