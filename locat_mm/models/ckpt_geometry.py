"""Fitting a checkpoint's geometry to a backbone: position-embedding grids and relative-position
tables of another size. Pure functions on tensors (no model, no toolbox import), used by the
per-family adapters in ``ckpt_convert`` and ``swin_ckpt_convert``.
"""
import math
from typing import Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor

from ..layers.patch_embed import resize_pos_embed

Grid = Tuple[int, int]

# How a caller states a grid the tensors cannot tell (used in error messages).
GRID_HINT = ("give it as init_cfg=dict(type='Pretrained', checkpoint=..., "
             'pos_embed_grid=(H, W))')


def source_grid(num_patches: int, known: Optional[Sequence[int]] = None,
                own: Optional[Sequence[int]] = None) -> Grid:
    """The patch grid (H, W) of a position embedding with ``num_patches`` patch tokens.

    Args:
        num_patches (int): Patch tokens of the checkpoint's embedding (prefix tokens excluded).
        known (Sequence[int], optional): The grid the checkpoint records (saved with it, or
            stated by the caller); used whenever given.
        own (Sequence[int], optional): The model's grid: taken when the count equals its
            (as mmpretrain and mmseg load an embedding of the same shape unchanged).

    Otherwise a square count is taken as a square grid (every published ViT checkpoint is
    square; LocAtViT's own checkpoints record their grid, so a 16 x 64 one is never read as
    32 x 32).

    Raises:
        ValueError: ``known`` does not hold ``num_patches`` tokens, or the grid cannot be told
            (a count that is not a square).
    """
    if known is not None:
        known = (int(known[0]), int(known[1]))
        if known[0] * known[1] != num_patches:
            raise ValueError(f'the position embedding has {num_patches} patch tokens, but its '
                             f'recorded grid {known[0]}x{known[1]} holds '
                             f'{known[0] * known[1]}: the checkpoint or pos_embed_grid is wrong')
        return known
    if own is not None and own[0] * own[1] == num_patches:
        return (int(own[0]), int(own[1]))
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(
            f'cannot tell the patch grid of a position embedding with {num_patches} patch '
            f'tokens (not a square, and the checkpoint records no grid): {GRID_HINT}. If it '
            'has one position token more or fewer than the model (a class token), build the '
            'backbone with with_cls_token as the checkpoint was.')
    return (side, side)


def fit_abs_pos_embed(pos_embed: Tensor, dst: Grid, known: Optional[Sequence[int]] = None,
                      mode: str = 'bicubic') -> Tensor:
    """A Swin absolute position embedding from a checkpoint, fitted to grid ``dst``.

    Reads mmpretrain's layout (1, H*W, C) and mmseg's (1, C, H, W); returns mmpretrain's
    (1, H'*W', C), resized as mmpretrain's ``_prepare_abs_pos_embed`` does (plain
    ``F.interpolate``, no prefix tokens) when the grids differ.

    Args:
        pos_embed (Tensor): (1, H*W, C) or (1, C, H, W).
        dst (tuple[int, int]): The model's patch grid.
        known (Sequence[int], optional): The checkpoint's recorded grid (3-d input only).
        mode (str): ``F.interpolate`` mode.
    """
    if pos_embed.dim() == 4:
        src = tuple(pos_embed.shape[2:])
        pos_embed = pos_embed.flatten(2).transpose(1, 2)
    else:
        src = source_grid(pos_embed.shape[1], known, own=dst)
    return resize_pos_embed(pos_embed, src, dst, mode, 0, antialias=False)


def relative_table_window(table: Tensor) -> int:
    """The window side W of a (2W - 1)^2 x heads relative-position table."""
    side = math.isqrt(table.shape[0])
    if side * side != table.shape[0] or side % 2 == 0:
        raise ValueError(f'a relative-position table has (2W - 1)^2 rows; got {table.shape[0]}')
    return (side + 1) // 2


def resize_relative_position_table(table: Tensor, window: int) -> Tensor:
    """A Swin relative-position bias table resized to another window, as mmseg's
    ``SwinTransformer.init_weights`` resizes it: the (2W - 1) x (2W - 1) offsets of each head
    as an image, bicubic ``F.interpolate`` (``align_corners=False``) to (2W' - 1) x (2W' - 1).

    (mmpretrain resizes with a geometric-progression ``scipy.interpolate.interp2d``, which
    SciPy removed in 1.14; its upstream call fails in this stack.)

    Args:
        table (Tensor): ((2W - 1)^2, heads).
        window (int): The new window side W'.

    Returns:
        Tensor: ((2W' - 1)^2, heads), in the dtype of ``table``.
    """
    src = 2 * relative_table_window(table) - 1
    dst = 2 * window - 1
    if src == dst:
        return table
    heads = table.shape[1]
    image = table.t().reshape(1, heads, src, src)
    resized = F.interpolate(image, size=(dst, dst), mode='bicubic')
    return resized.reshape(heads, dst * dst).t().contiguous()
