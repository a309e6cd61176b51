"""What a checkpoint holds, in words, for the messages of checkpoints that do not fit.

``describe_contents(state_dict)`` reads the tensors' names and shapes only: the family (ViT or
LocAtViT, Swin or LocAtSwin), the layout (this project's, the authors' timm one, mmseg's),
width and depth, and for a whole model its parts and number of classes, e.g. ``'a whole model
(auxiliary_head, backbone, decode_head, neck) whose backbone is a LocAtViT of width 128,
depth 4; 7 classes'``.
"""
import re
from typing import Any, Mapping, Optional

from .ckpt_convert import is_mmseg_layout, is_timm_layout, to_own_layout
from .swin_ckpt_convert import convert_timm_swin_state_dict, is_timm_swin_layout

_VIT_LAYER = re.compile(r'^layers\.(\d+)\.')
_SWIN_BLOCK = re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.')
# Where the classifiers and decode heads of the layouts read here keep their class weights.
_CLASS_WEIGHTS = ('head.weight', 'head.fc.weight', 'head.layers.head.weight',
                  'decode_head.conv_seg.weight')


def _width(state_dict: Mapping[str, Any]) -> Optional[int]:
    weight = state_dict.get('patch_embed.projection.weight')
    return None if weight is None else int(weight.shape[0])


def _gaug(state_dict: Mapping[str, Any]) -> bool:
    return any('.gaug.' in key for key in state_dict)


def _describe_vit(state_dict: Mapping[str, Any]) -> str:
    depth = len({m.group(1) for m in map(_VIT_LAYER.match, state_dict) if m})
    name = 'LocAtViT' if _gaug(state_dict) else 'plain ViT (no GAug weights)'
    width = _width(state_dict)
    return f'a {name} of width {width}, depth {depth}' if width else f'a {name}, depth {depth}'


def _describe_swin(state_dict: Mapping[str, Any]) -> str:
    blocks = {}
    for match in filter(None, map(_SWIN_BLOCK.match, state_dict)):
        blocks.setdefault(int(match.group(1)), set()).add(match.group(2))
    depths = tuple(len(blocks[i]) for i in sorted(blocks))
    name = 'LocAtSwin' if _gaug(state_dict) else 'plain Swin (no GAug weights)'
    return f'a {name} of width {_width(state_dict)}, depths {depths}'


def describe_backbone(state_dict: Mapping[str, Any]) -> str:
    """A backbone state dict (any layout this project reads) in words."""
    if is_timm_swin_layout(state_dict):
        return (_describe_swin(convert_timm_swin_state_dict(dict(state_dict)))
                + " in the authors' (timm) layout")
    if any(_SWIN_BLOCK.match(key) for key in state_dict):
        return _describe_swin(state_dict)
    layout = (" in the authors' (timm) layout" if is_timm_layout(state_dict) else
              " in mmseg's layout" if is_mmseg_layout(state_dict) else '')
    own = to_own_layout(dict(state_dict))
    if any(_VIT_LAYER.match(key) for key in own):
        return _describe_vit(own) + layout
    tops = sorted({key.split('.')[0] for key in state_dict})
    return f'no ViT or Swin (its keys start with {", ".join(tops[:6])})'


def describe_contents(state_dict: Mapping[str, Any]) -> str:
    """A checkpoint's (or a model's) state dict in words: backbone, parts, classes."""
    classes = next((int(state_dict[key].shape[0]) for key in _CLASS_WEIGHTS
                    if key in state_dict), None)
    suffix = f'; {classes} classes' if classes is not None else ''
    if not any(key.startswith('backbone.') for key in state_dict):
        kind = 'a classifier' if classes is not None else 'a backbone'
        return f'{kind}: {describe_backbone(state_dict)}{suffix}'
    parts = sorted({key.split('.')[0] for key in state_dict} - {'data_preprocessor'})
    backbone = {key[len('backbone.'):]: value for key, value in state_dict.items()
                if key.startswith('backbone.')}
    return (f'a whole model ({", ".join(parts)}) whose backbone is '
            f'{describe_backbone(backbone)}{suffix}')
