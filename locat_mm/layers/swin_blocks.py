"""LocAtSwin's blocks and stages (Swin's, with GAug in the window attention).

Arguments and key names follow mmpretrain's ``SwinBlock`` and ``SwinBlockSequence``
(``blocks.{j}.norm1``, ``attn.w_msa.{qkv,proj,relative_position_bias_table}``, ``norm2``,
``ffn.layers.0.0``, ``ffn.layers.1``, ``downsample.{norm,reduction}``) plus
``attn.w_msa.gaug.*``, so mmpretrain's and mmseg's Swin checkpoints fit a LocAtSwin with
``gaug=False`` unchanged. Plain torch: norms and activations are passed in as builders (the
backbone turns mmcv registry configs into them).
"""
import copy
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor

from ..errors import ArgumentError
from .blocks import FFN, DropPath, NormLayer
from .window_attention import (WindowLocAtAttention, shifted_window_mask, window_partition,
                               window_reverse)


class PatchMerging(nn.Module):
    """Swin's patch merging: each ``stride x stride`` group of tokens -> one token.

    The map is zero-padded at the bottom and right to a multiple of ``stride``; each group's
    channels are concatenated channel-major (as ``nn.Unfold`` orders them, which mmcv's
    ``PatchMerging`` uses, so its weights fit), normalised, then linearly reduced.
    Keys: ``norm``, ``reduction``.

    Args:
        in_channels (int): Token width C.
        out_channels (int): Width after merging.
        stride (int): Group side (2 in Swin).
        norm_layer (callable, optional): Builds the norm of the ``stride**2 * C`` concatenation.
        bias (bool): Bias in the reduction.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 2,
                 norm_layer: Optional[NormLayer] = nn.LayerNorm,
                 bias: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        merged = stride * stride * in_channels
        self.norm = norm_layer(merged) if norm_layer is not None else None
        self.reduction = nn.Linear(merged, out_channels, bias=bias)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, H*W, C) on (H, W) -> (B, H'*W', C_out) on (H', W') = ceil((H, W) / stride)."""
        B, L, C = x.shape
        H, W = hw
        s = self.stride
        x = x.view(B, H, W, C).permute(0, 3, 1, 2)
        x = F.pad(x, (0, -W % s, 0, -H % s))
        out_hw = (x.shape[2] // s, x.shape[3] // s)
        x = F.unfold(x, kernel_size=s, stride=s).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return self.reduction(x), out_hw


class ShiftWindowLocAt(nn.Module):
    """(Shifted) window attention over a token map: pad, shift, split into windows, attend,
    merge, shift back, crop.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        window_size (int): Window side.
        shift_size (int): Cyclic shift (0: plain windows; Swin uses ``window_size // 2`` in
            every second block).
        pad_small_map (bool): On maps no larger than a window, pad and keep shifting (mmseg's
            behaviour, for dense prediction); when False, a map exactly one window wide is
            not shifted (the original Swin's classification behaviour) and smaller maps are
            refused.
        drop_path (float): Stochastic depth of the output (``drop``).
        gaug (bool): GAug in the window attention.
        **attn_kwargs: ``qkv_bias``, ``qk_scale``, ``attn_drop``, ``proj_drop`` of
            :class:`WindowLocAtAttention`.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 shift_size: int = 0,
                 pad_small_map: bool = False,
                 drop_path: float = 0.,
                 gaug: bool = True,
                 **attn_kwargs) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ArgumentError(f'shift_size must be in [0, {window_size}), got {shift_size}')
        self.window_size = window_size
        self.shift_size = shift_size
        self.pad_small_map = pad_small_map
        self.w_msa = WindowLocAtAttention(embed_dims, num_heads, window_size, gaug=gaug,
                                          **attn_kwargs)
        self.drop = DropPath(drop_path)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """(B, H*W, C) tokens of an (H, W) map -> (B, H*W, C)."""
        B, L, C = x.shape
        H, W = hw
        window, shift = self.window_size, self.shift_size
        if min(H, W) < window and not self.pad_small_map:
            raise ArgumentError(
                f'The feature map ({H}, {W}) is smaller than the window size ({window}): use '
                'larger inputs, set pad_small_map=True, or a smaller window_size.')
        if min(H, W) == window and not self.pad_small_map:
            shift = 0
        x = x.view(B, H, W, C)
        x = F.pad(x, (0, 0, 0, -W % window, 0, -H % window))
        padded = x.shape[1:3]
        mask = None
        if shift:
            x = x.roll((-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(tuple(padded), window, shift, x.device)
        windows = self.w_msa(window_partition(x, window), (window, window), 0, mask)
        x = window_reverse(windows, window, padded)
        if shift:
            x = x.roll((shift, shift), dims=(1, 2))
        x = x[:, :H, :W].reshape(B, L, C)
        return self.drop(x)


class LocAtSwinBlock(nn.Module):
    """Pre-norm Swin block: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        window_size (int): Window side.
        shift (bool): Shift the windows by ``window_size // 2``.
        ffn_ratio (float): MLP hidden width / ``embed_dims``.
        drop_path (float): Stochastic-depth rate of both branches.
        pad_small_map (bool): See :class:`ShiftWindowLocAt`.
        attn_cfgs (dict): Extra arguments of :class:`ShiftWindowLocAt`.
        ffn_cfgs (dict): Extra arguments of :class:`~.blocks.FFN` (``num_fcs``, ``ffn_drop``,
            ``act_layer``).
        norm_layer (callable): Builds the two norms (default LayerNorm).
        with_cp (bool): Recompute the block in the backward pass to save memory.
        gaug (bool): GAug in the window attention.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 shift: bool = False,
                 ffn_ratio: float = 4.,
                 drop_path: float = 0.,
                 pad_small_map: bool = False,
                 attn_cfgs: Optional[dict] = None,
                 ffn_cfgs: Optional[dict] = None,
                 norm_layer: NormLayer = nn.LayerNorm,
                 with_cp: bool = False,
                 gaug: bool = True) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = norm_layer(embed_dims)
        self.attn = ShiftWindowLocAt(**{
            'embed_dims': embed_dims,
            'num_heads': num_heads,
            'window_size': window_size,
            'shift_size': window_size // 2 if shift else 0,
            'pad_small_map': pad_small_map,
            'drop_path': drop_path,
            'gaug': gaug,
            **(attn_cfgs or {})
        })
        self.norm2 = norm_layer(embed_dims)
        self.ffn = FFN(**{
            'embed_dims': embed_dims,
            'feedforward_channels': int(embed_dims * ffn_ratio),
            'drop_path_rate': drop_path,
            **(ffn_cfgs or {})
        })

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """(B, H*W, C) -> (B, H*W, C)."""

        def inner(x: Tensor) -> Tensor:
            x = x + self.attn(self.norm1(x), hw)
            return x + self.ffn(self.norm2(x))

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(inner, x, use_reentrant=False)
        return inner(x)


class LocAtSwinStage(nn.Module):
    """One Swin stage: ``depth`` blocks (windows shifted in every second one), then an
    optional patch merging (2 x 2 tokens -> 1, width doubled).

    Args:
        embed_dims (int): Token width of the blocks.
        depth (int): Blocks.
        num_heads (int): Attention heads.
        window_size (int): Window side.
        downsample (bool): End with a patch merging.
        downsample_cfg (dict): Extra arguments of :class:`PatchMerging` (``stride``,
            ``norm_layer``, ``bias``).
        drop_paths (float | Sequence[float]): Stochastic-depth rate of each block.
        block_cfgs (dict | Sequence[dict]): Extra arguments of each :class:`LocAtSwinBlock`.
        with_cp (bool): Gradient checkpointing in the blocks.
        pad_small_map (bool): See :class:`ShiftWindowLocAt`.
        gaug (bool): GAug in the window attention.
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 window_size: int = 7,
                 downsample: bool = False,
                 downsample_cfg: Optional[dict] = None,
                 drop_paths: Union[float, Sequence[float]] = 0.,
                 block_cfgs: Union[dict, Sequence[dict], None] = None,
                 with_cp: bool = False,
                 pad_small_map: bool = False,
                 gaug: bool = True) -> None:
        super().__init__()
        if not isinstance(drop_paths, Sequence):
            drop_paths = [drop_paths] * depth
        if block_cfgs is None or isinstance(block_cfgs, dict):
            block_cfgs = [copy.deepcopy(block_cfgs or {}) for _ in range(depth)]
        self.embed_dims = embed_dims
        self.blocks = nn.ModuleList([
            LocAtSwinBlock(**{
                'embed_dims': embed_dims,
                'num_heads': num_heads,
                'window_size': window_size,
                'shift': i % 2 == 1,
                'drop_path': drop_paths[i],
                'with_cp': with_cp,
                'pad_small_map': pad_small_map,
                'gaug': gaug,
                **block_cfgs[i]
            }) for i in range(depth)
        ])
        self.downsample = PatchMerging(**{
            'in_channels': embed_dims,
            'out_channels': 2 * embed_dims,
            **(downsample_cfg or {})
        }) if downsample else None

    @property
    def out_channels(self) -> int:
        """Width after the stage (after the merging, if any)."""
        return self.downsample.out_channels if self.downsample else self.embed_dims

    def forward(self, x: Tensor, hw: Tuple[int, int],
                do_downsample: bool = True) -> Tuple[Tensor, Tuple[int, int]]:
        """(B, H*W, C) on (H, W) -> the blocks' output, merged when ``do_downsample``, and
        its map size."""
        for block in self.blocks:
            x = block(x, hw)
        if self.downsample is not None and do_downsample:
            x, hw = self.downsample(x, hw)
        return x, tuple(hw)
