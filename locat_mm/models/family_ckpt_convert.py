"""Reading the authors' LocAt-on-RoPE-ViT and LocAt-on-Jumbo weights (pure functions).

- RoPE-ViT (the authors' ``models/ropevit.py``): timm's ``Eva`` layout: ``blocks.{i}.gamma_1``
  and ``gamma_2`` (layer scale), ``norm1``/``norm2``, ``attn.qkv``, ``attn.proj``,
  ``attn.gaug.*``, ``mlp.fc1``/``fc2``, ``norm``, ``head``, and one ``rope.freqs``
  (2, depth, heads, c/2) for all blocks; here each block's attention holds its own slice
  (``layers.{i}.attn.rope.freqs``, (2, heads, c/2)).
- Jumbo (the authors' ``models/jumbo.py``): timm's ``VisionTransformer`` layout plus
  ``blocks.{i}.norm3``, ``blocks.{i}.ls3.gamma`` and the shared ``jumbo_mlp.fc1``/``fc2``,
  which timm stores once at the top and again under every block (the same tensor); here it is
  stored once (``jumbo_mlp``). ``norm`` (over the J class tokens concatenated) becomes ``ln1``,
  ``norm_patches`` ``ln_patches``.

Every other key follows LocAtViT's map (:func:`locat_mm.models.ckpt_convert.convert_timm_key`).
A state dict already in this project's layout (``layers.*``) keeps its keys.

The adapters (``adapter(state_dict, model, metadata) -> state_dict``, pure, as
``adapt_vit_state_dict``; read by ``backbones/pretrained.py``) add the geometry: Jumbo's
position embedding resized to the model's grid, and for GAug models ``gaug_base_grid``, the grid
the GAug maps were trained on (:func:`~.ckpt_convert.add_gaug_grid`). RoPE needs no resizing:
its angles follow the grid of each input.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from .ckpt_convert import (POS_GRID_META, add_gaug_grid, convert_timm_key, fit_pos_embed,
                           is_timm_layout)
from .ckpt_geometry import source_grid

_EVA_TO_MM = (
    (r'^blocks\.(\d+)\.gamma_1$', r'layers.\1.attn.gamma1.weight'),
    (r'^blocks\.(\d+)\.gamma_2$', r'layers.\1.ffn.gamma2.weight'),
)

_JUMBO_TO_MM = (
    (r'^blocks\.(\d+)\.ls1\.gamma$', r'layers.\1.attn.gamma1.weight'),
    (r'^blocks\.(\d+)\.ls2\.gamma$', r'layers.\1.ffn.gamma2.weight'),
    (r'^blocks\.(\d+)\.ls3\.gamma$', r'layers.\1.gamma3.weight'),
    (r'^blocks\.(\d+)\.norm3\.', r'layers.\1.ln3.'),
    (r'^jumbo_mlp\.fc1\.', 'jumbo_mlp.layers.0.0.'),
    (r'^jumbo_mlp\.fc2\.', 'jumbo_mlp.layers.1.'),
    (r'^norm_patches\.', 'ln_patches.'),
)
_BLOCK_JUMBO_MLP = re.compile(r'^blocks\.(\d+)\.jumbo_mlp\.(.+)$')


def convert_ropevit_state_dict(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """An authors' LocAt-RoPE-ViT / RoPE-ViT state dict (timm ``Eva``) in this project's
    ``LocAtRoPEViT`` layout (see the module docstring); own layout passes through.

    Raises:
        ValueError: ``rope.freqs`` is not (2, depth, heads, c/2) for the blocks present.
    """
    if not is_timm_layout(state_dict):
        return OrderedDict(state_dict)
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key == 'rope.freqs':
            depth = len({k.split('.')[1] for k in state_dict if k.startswith('blocks.')})
            if value.dim() != 4 or value.shape[:2] != (2, depth):
                raise ValueError(
                    f'rope.freqs has shape {tuple(value.shape)}; RoPE-Mixed of a {depth}-block '
                    'model stores (2, depth, heads, head_dims / 2). Only the mixed mode '
                    '(rope_mixed_mode=True) is supported.')
            for i in range(depth):
                converted[f'layers.{i}.attn.rope.freqs'] = value[:, i].clone()
            continue
        converted[convert_timm_key(key, first=_EVA_TO_MM)] = value
    return converted


def convert_jumbo_state_dict(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """An authors' LocAt-Jumbo / Jumbo state dict (timm ``VisionTransformer`` plus the jumbo
    MLP) in this project's ``LocAtJumbo`` layout (see the module docstring); own layout passes
    through.

    Raises:
        ValueError: A block's ``jumbo_mlp`` copy differs from the top-level one: the
            checkpoint is of a model whose jumbo MLP is not shared, which Jumbo is not.
    """
    if not is_timm_layout(state_dict):
        return OrderedDict(state_dict)
    converted = OrderedDict()
    for key, value in state_dict.items():
        copy = _BLOCK_JUMBO_MLP.match(key)
        if copy:
            shared = state_dict.get(f'jumbo_mlp.{copy.group(2)}')
            if shared is None or not torch.equal(shared, value):
                raise ValueError(
                    f'{key} is not the same tensor as jumbo_mlp.{copy.group(2)}: Jumbo shares '
                    'one jumbo MLP between all blocks, and this checkpoint does not; it is '
                    'another model.')
            continue
        converted[convert_timm_key(key, first=_JUMBO_TO_MM)] = value
    return converted


def adapt_ropevit_state_dict(state_dict: Dict[str, Tensor], model: Any,
                             metadata: Optional[dict] = None) -> 'OrderedDict[str, Tensor]':
    """A LocAt-RoPE-ViT / RoPE-ViT backbone state dict (the authors' layout or this project's)
    fitted to ``model`` (a ``LocAtRoPEViT``): :func:`convert_ropevit_state_dict`, then
    ``gaug_base_grid`` for a GAug model when the checkpoint has none (the authors' checkpoints
    have no position embedding to tell it: ``model``'s grid, with a warning for GAug weights).
    Pure: neither ``state_dict`` nor ``model`` is changed; ``metadata`` is not needed."""
    out = convert_ropevit_state_dict(state_dict)
    add_gaug_grid(out, None, model)
    return out


def adapt_jumbo_state_dict(state_dict: Dict[str, Tensor], model: Any,
                           metadata: Optional[dict] = None) -> 'OrderedDict[str, Tensor]':
    """A LocAt-Jumbo / Jumbo backbone state dict (the authors' layout or this project's)
    fitted to ``model`` (a ``LocAtJumbo``): :func:`convert_jumbo_state_dict`; ``pos_embed``
    (patches only) resized from its grid (the one ``metadata['pos_embed_grid']`` records, else
    told by the token count: :func:`~.ckpt_geometry.source_grid`) to ``model``'s, as timm
    (bicubic, antialiased); ``gaug_base_grid`` for a GAug model when the checkpoint has none
    (the grid of the position embedding for GAug weights). Pure.

    Raises:
        ValueError: The position embedding's grid cannot be told (a token count that is not a
            square, and no recorded grid).
    """
    out = convert_jumbo_state_dict(state_dict)
    src = None
    if 'pos_embed' in out:
        src = source_grid(out['pos_embed'].shape[1], (metadata or {}).get(POS_GRID_META),
                          model.patch_resolution)
        out['pos_embed'] = fit_pos_embed(out['pos_embed'], src, model)
    add_gaug_grid(out, src, model)
    return out
