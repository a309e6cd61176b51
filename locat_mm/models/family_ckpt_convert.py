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
A state dict already in this project's layout (``layers.*``) is returned as it is.
"""
import re
from collections import OrderedDict
from typing import Dict

import torch
from torch import Tensor

from .ckpt_convert import _rename, convert_timm_key, is_timm_layout

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
        new = _rename(key, _EVA_TO_MM)
        converted[new if new != key else convert_timm_key(key)] = value
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
        new = _rename(key, _JUMBO_TO_MM)
        converted[new if new != key else convert_timm_key(key)] = value
    return converted
