"""Patch embedding with padding, and position-embedding resizing (plain torch)."""
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..ops.resize import resize_antialiased

IntPair = Union[int, Tuple[int, int]]
# A size as the forward sees it: an int, a symbolic size, or a 0-d tensor under jit tracing.
Size = Union[int, torch.SymInt, Tensor]


def to_2tuple(x: IntPair) -> Tuple[int, int]:
    """``7 -> (7, 7)``; a pair stays as it is (as a tuple)."""
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def _clamp_min_zero(size: Size) -> Size:
    """``max(size, 0)`` for an int, a symbolic size or a traced 0-d size tensor."""
    if isinstance(size, Tensor):
        return size.clamp_min(0)
    return torch.sym_max(size, 0)


def resize_pos_embed(pos_embed: Tensor,
                     src_shape: Tuple[int, int],
                     dst_shape: Tuple[int, int],
                     mode: str = 'bicubic',
                     num_extra_tokens: int = 1,
                     antialias: bool = True) -> Tensor:
    """Resizes a (1, P + H*W, C) position embedding to another patch grid.

    Prefix tokens keep their embedding. Two ways to resize the grid:

    - ``antialias=True`` (the default): as the authors' reference (timm's
      ``resample_abs_pos_embed``), antialiased for ``'bilinear'``/``'bicubic'``. Note that this
      also changes upsampling, whose antialiased cubic kernel differs from the plain one.
    - ``antialias=False``: plain ``F.interpolate(..., align_corners=False)``, as mmpretrain's
      and mmseg's ``VisionTransformer`` resize, so their checkpoints give their own outputs.

    Args:
        pos_embed (Tensor): (1, P + H*W, C).
        src_shape (tuple[int, int]): Grid (H, W) of ``pos_embed``.
        dst_shape (tuple[int, int]): Grid to resize to.
        mode (str): ``F.interpolate`` mode.
        num_extra_tokens (int): P, the prefix tokens ``pos_embed`` covers.
        antialias (bool): See above; ignored for modes other than bilinear and bicubic.

    Returns:
        Tensor: (1, P + H'*W', C) in the dtype of ``pos_embed``.
    """
    src_shape, dst_shape = tuple(src_shape), tuple(dst_shape)
    # Symbolic sizes (torch.export, dynamic torch.compile) take no shortcut: a branch on them
    # would specialise the graph to one size; the resize to the same size is the identity.
    if all(type(s) is int for s in dst_shape) and src_shape == dst_shape:
        return pos_embed
    _, length, channels = pos_embed.shape
    if length != src_shape[0] * src_shape[1] + num_extra_tokens:
        raise ValueError(
            f'pos_embed has {length} tokens, but a {src_shape[0]}x{src_shape[1]} grid with '
            f'{num_extra_tokens} prefix token(s) needs '
            f'{src_shape[0] * src_shape[1] + num_extra_tokens}: check `img_size`, '
            '`patch_size`, `with_cls_token` and `num_register_tokens` against the checkpoint.')
    prefix, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, *src_shape, channels).permute(0, 3, 1, 2)
    if antialias and mode in ('bilinear', 'bicubic'):
        # The antialiased kernel as matrix products: equal results, and it exports to ONNX.
        grid = resize_antialiased(grid.float(), dst_shape, mode)
    else:
        align = {} if mode in ('nearest', 'area', 'nearest-exact') else dict(align_corners=False)
        grid = F.interpolate(grid.float(), size=dst_shape, mode=mode, **align)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


class PadPatchEmbed(nn.Module):
    """Splits an image into patches with a strided convolution, then an optional norm.

    Arguments and key names (``projection``, ``norm``) follow mmcv's ``PatchEmbed``, which
    mmpretrain's and mmseg's ViTs use. With ``padding='corner'`` (the default) an input whose
    sides do not fit the stride is zero-padded at the bottom and right first, as the authors'
    reference does with a dynamic image size; ``'same'`` pads both sides evenly; an int or pair
    is the convolution's own padding.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Output channels.
        kernel_size (int | tuple): Patch side(s).
        stride (int | tuple, optional): Patch step; defaults to ``kernel_size``.
        padding (str | int | tuple): ``'corner'``, ``'same'`` or the convolution's padding.
        dilation (int | tuple): Convolution dilation.
        bias (bool): Bias in the convolution.
        norm_layer (callable, optional): ``norm_layer(embed_dims)`` builds a norm applied to
            the tokens (key ``norm``).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: IntPair = 16,
                 stride: Optional[IntPair] = None,
                 padding: Union[str, IntPair] = 'corner',
                 dilation: IntPair = 1,
                 bias: bool = True,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.kernel_size = to_2tuple(kernel_size)
        self.stride = to_2tuple(stride if stride is not None else kernel_size)
        self.dilation = to_2tuple(dilation)
        if isinstance(padding, str):
            if padding not in ('corner', 'same'):
                raise ValueError(f"padding must be 'corner', 'same' or an int, got {padding!r}")
            self.adaptive_padding, conv_padding = padding, (0, 0)
        else:
            self.adaptive_padding, conv_padding = None, to_2tuple(padding)
        self.conv_padding = conv_padding
        self.projection = nn.Conv2d(
            in_channels,
            embed_dims,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=conv_padding,
            dilation=self.dilation,
            bias=bias)
        self.norm = norm_layer(embed_dims) if norm_layer is not None else None

    def _pad_amount(self, size: Tuple[Size, Size]) -> Tuple[Size, Size]:
        """Zero rows and columns that make every side fit a whole number of strides.

        Integer arithmetic without a branch on the size: the sides may be Python ints,
        symbolic sizes (``torch.export``, dynamo) or the 0-d size tensors ``torch.jit.trace``
        records, and the padding then follows the input size in the exported graph instead of
        being frozen at the size it was traced at.
        """
        pads = []
        for side, k, s, d in zip(size, self.kernel_size, self.stride, self.dilation):
            # The rows up to the next whole stride, ceil(side / s) * s - side, written with
            # one floor division (symbolic-shape reasoning bounds it); a kernel wider than the
            # stride needs ``reach`` rows more.
            reach = (k - 1) * d + 1 - s
            pad = (side + s - 1) // s * s - side + reach
            pads.append(pad if reach >= 0 else _clamp_min_zero(pad))
        return pads[0], pads[1]

    def output_grid(self, size: IntPair) -> Tuple[int, int]:
        """The patch grid (H', W') an image of ``size`` (H, W) gives."""
        size = to_2tuple(size)
        pad = self._pad_amount(size) if self.adaptive_padding else (0, 0)
        return tuple(
            (side + p + 2 * cp - d * (k - 1) - 1) // s + 1
            for side, p, cp, k, s, d in zip(size, pad, self.conv_padding, self.kernel_size,
                                            self.stride, self.dilation))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, C_in, H, W) -> tokens (B, H'*W', C) and the grid (H', W'), H' = ceil(H / p)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'expected images of shape (B, {self.in_channels}, H, W), got '
                f'{tuple(x.shape)}; set `in_channels` to match the data.')
        if self.adaptive_padding:
            pad_h, pad_w = self._pad_amount(x.shape[2:])
            # Eager calls skip a zero pad; under a tracer the (symbolic) pad is always applied,
            # so the graph pads correctly at every input size.
            if not (type(pad_h) is int and type(pad_w) is int and pad_h == pad_w == 0):
                if self.adaptive_padding == 'corner':
                    x = F.pad(x, (0, pad_w, 0, pad_h))
                else:
                    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        x = self.projection(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, grid
