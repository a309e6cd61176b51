"""LocAtViT: the Locality-Attending Vision Transformer backbone."""
import copy
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor

from ...layers import LocAtEncoderLayer, PadPatchEmbed, parameter_free_attention, resize_pos_embed
from ..ckpt_convert import (convert_timm_state_dict, describe_mismatch, is_timm_layout,
                            mismatched_keys, select_prefix, unwrap_state_dict)


def _to_2tuple(x: Union[int, Sequence[int]]) -> Tuple[int, int]:
    return (x, x) if isinstance(x, int) else tuple(x)


class LocAtViT(BaseModule):
    """Locality-Attending Vision Transformer (Hajimiri et al., ICLR 2026).

    A plain ViT whose attention logits get a learnable per-query Gaussian bias toward
    neighbouring patches (GAug), and whose final tokens pass one parameter-free attention (PRR)
    before classification pooling. With ``gaug=False, prr=False`` it is the plain ViT baseline.
    The interface follows mmpretrain's ``VisionTransformer``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``),
            or a dict with ``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels``.
        img_size (int | tuple): Image size the model is built for; sets the position-embedding
            grid and GAug's base grid. Other sizes run too (padded, embedding resized).
        patch_size (int): Patch side.
        in_channels (int): Image channels.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned (negative counts
            from the end).
        out_type (str): ``'cls_token'`` (B, C); ``'featmap'`` (B, C, H, W), stride
            ``patch_size``; ``'avg_featmap'`` (B, C); ``'raw'`` (B, P + H*W, C).
        final_norm (bool): Keep the final LayerNorm (``ln1``), applied to the last block.
        with_cls_token (bool): Prepend a class token.
        num_register_tokens (int): Register tokens K (Darcet et al.), prepended after the class
            token. As in the authors' RegViT (timm ``reg_tokens=K, no_embed_class=True``): with
            K > 0 the position embedding covers the patches only, and the class and register
            tokens are prepended after it is added. All 1 + K prefix tokens are prefix for GAug
            (zero bias rows and columns); PRR runs over all tokens; dense outputs drop them.
        with_pos_embed (bool): Learn an absolute position embedding. With False there is none
            (no ``pos_embed`` key) and GAug is the only positional signal.
        gaug (bool): Gaussian-augmented attention in every block.
        prr (bool): Patch representation refinement before pooling (``cls_token`` and
            ``avg_featmap`` outputs of the last block only; dense outputs never get it).
        gaug_impl (str): ``'factored'``, ``'flex'`` or ``'dense'``; see ``LocAtAttention``.
        qkv_bias (bool): Bias in the qkv projections.
        drop_rate (float): Dropout after the position embedding, projections and MLPs.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Stochastic depth, increasing linearly to this over the blocks.
        norm_eps (float): LayerNorm epsilon.
        frozen_stages (int): Freeze the embeddings and the first ``frozen_stages`` blocks
            (-1: nothing; ``num_layers``: everything, final norm included).
        interpolate_mode (str): How the position embedding is resized.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH, prefix=None,
            strict=True)`` loads this project's, an mmpretrain/mmseg model's (``backbone.``
            found automatically) or the authors' (timm layout) weights; keys that do not fit
            raise an error unless ``strict=False``.
    """
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny', 'deit-tiny'], dict(
            embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768)),
        **dict.fromkeys(['s', 'small', 'deit-small'], dict(
            embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536)),
        **dict.fromkeys(['b', 'base', 'deit-base'], dict(
            embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072)),
    }
    OUT_TYPES = {'raw', 'cls_token', 'featmap', 'avg_featmap'}

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 final_norm: bool = True,
                 with_cls_token: bool = True,
                 num_register_tokens: int = 0,
                 with_pos_embed: bool = True,
                 gaug: bool = True,
                 prr: bool = True,
                 gaug_impl: str = 'factored',
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6,
                 frozen_stages: int = -1,
                 interpolate_mode: str = 'bicubic',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        self.arch_settings = self._parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        self.num_heads = self.arch_settings['num_heads']
        self.img_size = _to_2tuple(img_size)
        self.patch_size = patch_size
        if self.img_size[0] % patch_size or self.img_size[1] % patch_size:
            raise ValueError(
                f'img_size {self.img_size} is not a multiple of patch_size {patch_size}: set '
                f'img_size to the size the weights were trained at (e.g. 224); inputs of '
                'other sizes are padded at run time.')
        self.patch_resolution = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)

        if out_type not in self.OUT_TYPES:
            raise ValueError(f'Unsupported out_type {out_type!r}: choose from '
                             f'{sorted(self.OUT_TYPES)}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError('out_type="cls_token" needs with_cls_token=True')
        self.out_type = out_type
        self.with_cls_token = with_cls_token
        if num_register_tokens < 0:
            raise ValueError(f'num_register_tokens must be >= 0, got {num_register_tokens}')
        self.num_register_tokens = num_register_tokens
        # Prefix tokens (class + registers): GAug leaves them out, dense outputs drop them.
        self.num_extra_tokens = int(with_cls_token) + num_register_tokens
        # Prefix tokens the position embedding covers: the class token as in mmpretrain, none
        # with registers (the authors' RegViT embeds patches only).
        self.num_pos_prefix = 0 if num_register_tokens else int(with_cls_token)
        self.gaug = gaug
        self.prr = prr
        self.interpolate_mode = interpolate_mode

        self.patch_embed = PadPatchEmbed(in_channels, self.embed_dims, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) \
            if with_cls_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, num_register_tokens, self.embed_dims)) \
            if num_register_tokens else None
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + self.num_pos_prefix, self.embed_dims)) \
            if with_pos_embed else None
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        self._register_load_state_dict_pre_hook(self._adapt_state_dict)

        self.out_indices = self._parse_out_indices(out_indices)
        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        self.layers = ModuleList([
            LocAtEncoderLayer(
                embed_dims=self.embed_dims,
                num_heads=self.num_heads,
                feedforward_channels=self.arch_settings['feedforward_channels'],
                base_grid=self.patch_resolution,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=float(dpr[i]),
                qkv_bias=qkv_bias,
                gaug=gaug,
                gaug_impl=gaug_impl,
                norm_eps=norm_eps) for i in range(self.num_layers)
        ])
        self.final_norm = final_norm
        if final_norm:
            self.ln1 = nn.LayerNorm(self.embed_dims, eps=norm_eps)
        if out_type == 'avg_featmap':
            self.ln2 = nn.LayerNorm(self.embed_dims, eps=norm_eps)

        self.frozen_stages = frozen_stages
        if frozen_stages > 0:
            self._freeze_stages()

    # ------------------------------------------------------------------ construction helpers
    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise ValueError(f'Unknown arch {arch!r}: choose from {sorted(self.arch_zoo)} '
                                 'or pass a dict')
            return dict(self.arch_zoo[key])
        needed = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
        if not isinstance(arch, dict) or not needed <= set(arch):
            raise ValueError(f'A custom arch must be a dict with keys {sorted(needed)}')
        return dict(arch)

    def _parse_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            resolved = index + self.num_layers if index < 0 else index
            if not 0 <= resolved < self.num_layers:
                raise ValueError(f'out_indices entry {index} is out of range for '
                                 f'{self.num_layers} blocks')
            parsed.append(resolved)
        return tuple(parsed)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """Loads ``init_cfg``'s checkpoint, or initialises as the reference (timm) does."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(
                self.init_cfg['checkpoint'],
                prefix=self.init_cfg.get('prefix'),
                map_location=self.init_cfg.get('map_location', 'cpu'),
                strict=self.init_cfg.get('strict', True))
            self._is_init = True
            return
        super().init_weights()
        if self.init_cfg is None:
            if self.pos_embed is not None:
                trunc_normal_(self.pos_embed, std=.02)
            for token in (self.cls_token, self.reg_token):
                if token is not None:
                    nn.init.normal_(token, std=1e-6)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu',
                        strict: bool = True) -> None:
        """Loads backbone weights from a checkpoint file.

        Args:
            checkpoint (str): Path or URL (anything mmengine's loaders read).
            prefix (str, optional): Where the backbone sits in the checkpoint; by default
                ``backbone.`` when present, else the whole state dict.
            map_location (str): Device to load tensors to.
            strict (bool): Raise on keys that do not fit (classifier and final-norm keys
                excused); with False they are only logged.
        """
        logger = MMLogger.get_current_instance()
        try:
            raw = _load_checkpoint(checkpoint, map_location=map_location)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'Pretrained checkpoint {checkpoint!r} not found: set '
                'model.backbone.init_cfg.checkpoint to an existing file (or remove init_cfg '
                'to train from scratch).') from err
        state_dict = select_prefix(unwrap_state_dict(raw), prefix)
        if is_timm_layout(state_dict):
            state_dict = convert_timm_state_dict(state_dict)
        missing, unexpected = mismatched_keys(self.state_dict().keys(), state_dict.keys())
        if missing or unexpected:
            message = describe_mismatch(missing, unexpected, f'Checkpoint {checkpoint!r}')
            if strict:
                raise KeyError(message)
            logger.warning(message)
        self.load_state_dict(state_dict, strict=False)
        logger.info(f'LocAtViT: loaded {checkpoint}')

    def _adapt_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, *args,
                          **kwargs) -> None:
        """Load pre-hook: reads the reference (timm) layout and resizes ``pos_embed``."""
        own = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        if is_timm_layout(own):
            for key, value in convert_timm_state_dict(
                    {k: state_dict.pop(full) for k, full in own.items()}).items():
                state_dict[prefix + key] = value
        name = prefix + 'pos_embed'
        if name not in state_dict or self.pos_embed is None:
            return
        pos_embed = state_dict[name]
        if not self.with_cls_token and pos_embed.shape[1] == self.pos_embed.shape[1] + 1:
            pos_embed = pos_embed[:, 1:]
        if pos_embed.shape != self.pos_embed.shape:
            side = int(round((pos_embed.shape[1] - self.num_pos_prefix)**0.5))
            MMLogger.get_current_instance().info(
                f'Resize the pos_embed shape from {tuple(pos_embed.shape)} to '
                f'{tuple(self.pos_embed.shape)}.')
            pos_embed = resize_pos_embed(pos_embed, (side, side), self.patch_resolution,
                                         self.interpolate_mode, self.num_pos_prefix)
        state_dict[name] = pos_embed

    # ------------------------------------------------------------------ training state
    def _freeze_stages(self) -> None:
        frozen = [self.patch_embed, self.drop_after_pos]
        frozen += list(self.layers[:self.frozen_stages])
        if self.frozen_stages >= self.num_layers:
            frozen += [getattr(self, name) for name in ('ln1', 'ln2') if hasattr(self, name)]
        for param in (self.pos_embed, self.cls_token, self.reg_token):
            if param is not None:
                param.requires_grad = False
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'LocAtViT':
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer-wise lr-decay depth of a parameter, as mmpretrain's ViT counts it.

        Returns:
            tuple[int, int]: depth (0 for embeddings, i + 1 for block i, ``num_layers + 1``
            for everything after the blocks) and the number of depths, ``num_layers + 2``.
        """
        num_depths = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name in ('cls_token', 'reg_token', 'pos_embed') or name.startswith('patch_embed'):
            return 0, num_depths
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, num_depths
        return num_depths - 1, num_depths

    # ------------------------------------------------------------------ forward
    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Images (B, C_in, H, W) -> tokens (B, P + H'*W', C) with position embedding.

        Token order: class token, register tokens, patches (row-major).
        """
        x, grid = self.patch_embed(x)
        prefix = [token.expand(x.shape[0], -1, -1)
                  for token in (self.cls_token, self.reg_token) if token is not None]
        x = torch.cat(prefix + [x], dim=1)
        if self.pos_embed is not None:
            pos_embed = resize_pos_embed(self.pos_embed, self.patch_resolution, grid,
                                         self.interpolate_mode, self.num_pos_prefix)
            # With registers the embedding skips every prefix token (num_pos_prefix = 0).
            covered = x.shape[1] - pos_embed.shape[1]
            x = torch.cat([x[:, :covered], x[:, covered:] + pos_embed], dim=1) \
                if covered else x + pos_embed
        return self.drop_after_pos(x), grid

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Images (B, C_in, H, W) -> one output per ``out_indices`` entry (see ``out_type``)."""
        x, grid = self.embed(x)
        outs = []
        last = self.num_layers - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, grid, self.num_extra_tokens)
            if i == last and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, grid, is_last=i == last))
        return tuple(outs)

    def _format_output(self, x: Tensor, grid: Tuple[int, int], is_last: bool) -> Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'featmap':
            patches = x[:, self.num_extra_tokens:]
            return patches.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        if self.prr and is_last:
            x = parameter_free_attention(x, self.num_heads)
        if self.out_type == 'cls_token':
            return x[:, 0]
        return self.ln2(x[:, self.num_extra_tokens:].mean(dim=1))
