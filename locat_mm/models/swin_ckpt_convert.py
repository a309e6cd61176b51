"""Reading LocAtSwin weights: the authors' timm-layout Swin checkpoints in mmpretrain's layout.

The authors' LocAtSwin is timm's ``SwinTransformer`` with GAug in every window attention
(keys ``layers.{i}.blocks.{j}.attn.gaug.{log_var,log_alpha}``). This project's layout is
mmpretrain's (and mmseg's) ``SwinTransformer``: ``stages.{i}.blocks.{j}.attn.w_msa.*``,
``ffn.layers.*``, the patch merging at the end of a stage, the final norm ``norm{last}``.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Tuple

from torch import Tensor

from .ckpt_convert import (POS_GRID_META, convert_classifier_file, listing, logger,
                           mismatch_hints)
from .ckpt_geometry import (fit_abs_pos_embed, relative_table_window,
                            resize_relative_position_table)

_TIMM_BLOCK = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.(.+)$')
_TIMM_DOWNSAMPLE = re.compile(r'^layers\.(\d+)\.downsample\.(norm|reduction)\.(weight|bias)$')
# Within a block: the reference's sub-key -> mmpretrain's.
_TIMM_BLOCK_PARTS = (
    (r'^norm([12])\.', r'norm\1.'),
    (r'^attn\.', 'attn.w_msa.'),
    (r'^mlp\.fc1\.', 'ffn.layers.0.0.'),
    (r'^mlp\.fc2\.', 'ffn.layers.1.'),
)
# Every key a timm-layout (LocAt)Swin classifier may hold; anything else (absolute position
# embedding, other heads) belongs to a model this project does not implement.
_TIMM_SWIN_KEY = re.compile(
    r'^(patch_embed\.(proj|norm)\.(weight|bias)|(norm|head|head\.fc)\.(weight|bias)'
    r'|layers\.\d+\.downsample\.(norm|reduction)\.(weight|bias)'
    r'|layers\.\d+\.blocks\.\d+\.(attn_mask|attn\.relative_position_(bias_table|index)'
    r'|(norm1|norm2|attn\.qkv|attn\.proj|attn\.gaug\.log_var|attn\.gaug\.log_alpha|mlp\.fc1'
    r'|mlp\.fc2)\.(weight|bias)))$')
# Where mmpretrain's LinearClsHead keeps its classifier.
MM_SWIN_HEAD_PREFIX = 'head.fc.'


def is_timm_swin_layout(keys: Iterable[str]) -> bool:
    """True for a Swin state dict in the reference's (timm) layout."""
    return any(_TIMM_BLOCK.match(key) for key in keys)


def timm_merge_to_unfold(tensor: Tensor) -> Tensor:
    """A patch-merging parameter's last axis (4C) from timm's order to mmcv's ``PatchMerging``.

    timm concatenates the four tokens of a 2 x 2 patch, each C wide, in the order
    (row, col) = (0, 0), (1, 0), (0, 1), (1, 1); mmcv's ``nn.Unfold`` puts channels first and
    the 2 x 2 offsets (row-major) inside each channel.
    """
    *lead, width = tensor.shape
    parts = tensor.reshape(*lead, 4, width // 4)[..., [0, 2, 1, 3], :]
    return parts.transpose(-1, -2).reshape(*lead, width)


def _block_key(rest: str) -> str:
    for pattern, repl in _TIMM_BLOCK_PARTS:
        new, hits = re.subn(pattern, repl, rest)
        if hits:
            return new
    return rest


def convert_timm_swin_state_dict(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """A timm-layout (LocAt)Swin state dict in this project's (mmpretrain's) backbone layout.

    Both timm layouts are read: since timm 0.9 the patch merging opens stage ``i + 1``
    (``layers.{i+1}.downsample``); before, it closed stage ``i``. Stored shifted-window masks
    (``attn_mask``) are dropped (they are recomputed), the final ``norm`` becomes
    ``norm{last}``, and a classifier (``head.*`` or ``head.fc.*``) becomes ``head.fc.*``.
    """
    keys = list(state_dict)
    stages = 1 + max(int(_TIMM_BLOCK.match(k).group(1)) for k in keys if _TIMM_BLOCK.match(k))
    merge_opens_stage = not any(k.startswith('layers.0.downsample.') for k in keys)
    converted = OrderedDict()
    for key, value in state_dict.items():
        block, down = _TIMM_BLOCK.match(key), _TIMM_DOWNSAMPLE.match(key)
        if block:
            stage, index, rest = block.groups()
            if rest == 'attn_mask':
                continue
            key = f'stages.{stage}.blocks.{index}.{_block_key(rest)}'
        elif down:
            stage, part, kind = down.groups()
            stage = int(stage) - 1 if merge_opens_stage else int(stage)
            key = f'stages.{stage}.downsample.{part}.{kind}'
            value = timm_merge_to_unfold(value)
        elif key.startswith('patch_embed.proj.'):
            key = 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
        elif key.startswith('norm.'):
            key = f'norm{stages - 1}.' + key[len('norm.'):]
        elif key.startswith('head.'):
            key = MM_SWIN_HEAD_PREFIX + key.split('.')[-1]
        converted[key] = value
    return converted


def adapt_swin_state_dict(state_dict: Dict[str, Tensor], model: Any,
                          metadata: Optional[dict] = None) -> 'OrderedDict[str, Tensor]':
    """A Swin/LocAtSwin backbone state dict in any layout this project reads, fitted to
    ``model``. Pure: ``model`` is read, never changed, and ``state_dict`` is not modified.

    Reads every layout mmpretrain's and mmseg's Swin loaders read:

    - this project's = mmpretrain's current (``_version`` 3) = mmseg's layout;
    - the authors' (timm, both merge placements) and the official Swin layout (what mmseg's
      ``swin2mmseg`` converts), through :func:`convert_timm_swin_state_dict`;
    - mmpretrain's before ``_version`` 2: the final norm as ``norm.*``, renamed
      ``norm{last}.*`` (mmpretrain renames it in ``_load_from_state_dict``);
    - stored shifted-window masks (``attn_mask``, mmpretrain before ``_version`` 3, timm)
      dropped; the relative-position index (a constant) taken from ``model``.

    And fits the geometry: a ``relative_position_bias_table`` of another window size is resized
    as mmseg does (:func:`~.ckpt_geometry.resize_relative_position_table`); an
    ``absolute_pos_embed`` (mmpretrain's (1, H*W, C) or mmseg's (1, C, H, W)) is fitted to
    ``model.patch_resolution`` (grid from ``metadata['pos_embed_grid']`` when recorded) when the
    model has one.

    Args:
        state_dict (dict[str, Tensor]): Backbone keys (prefix already stripped).
        model (LocAtSwin): The backbone to load into.
        metadata (dict, optional): The checkpoint's local metadata of the backbone module.
    """
    out = convert_timm_swin_state_dict(state_dict) if is_timm_swin_layout(state_dict) \
        else OrderedDict(state_dict)
    final_norm = f'norm{len(model.stages) - 1}.'
    for key in [k for k in out if k.startswith('norm.')]:
        out.setdefault(final_norm + key[len('norm.'):], out.pop(key))
    own = model.state_dict()
    for key in list(out):
        if key.endswith('attn_mask'):
            del out[key]
        elif (key.endswith('relative_position_bias_table') and key in own
              and out[key].shape[0] != own[key].shape[0]):
            window = relative_table_window(own[key])
            logger().info(f'Resize {key} from {tuple(out[key].shape)} to a {window}x{window} '
                          'window.')
            out[key] = resize_relative_position_table(out[key], window)
    out.update((key, value) for key, value in own.items()
               if key.endswith('relative_position_index'))
    if 'absolute_pos_embed' in out and getattr(model, 'absolute_pos_embed', None) is not None:
        out['absolute_pos_embed'] = fit_abs_pos_embed(
            out['absolute_pos_embed'], model.patch_resolution,
            (metadata or {}).get(POS_GRID_META), getattr(model, 'interpolate_mode', 'bicubic'))
    return out


def swin_mismatch(model_keys: Iterable[str], ckpt_keys: Iterable[str]) -> Tuple[List, List]:
    """Missing and unexpected keys of a LocAtSwin backbone checkpoint.

    Excused: the relative-position index (a constant, regenerated when absent), the
    classifier, and output norms the backbone was built without (e.g. the final norm of a
    dense model that reads features before it).
    """
    model_keys, ckpt_keys = set(model_keys), set(ckpt_keys)
    missing = sorted(k for k in model_keys - ckpt_keys
                     if not k.endswith('relative_position_index'))
    unexpected = sorted(k for k in ckpt_keys - model_keys
                        if not re.match(r'^(head\.|norm\d+\.)', k))
    return missing, unexpected


def describe_swin_mismatch(missing: List[str], unexpected: List[str], source: str,
                           limit: int = 12, shapes: Optional[dict] = None,
                           target: str = 'this LocAtSwin') -> str:
    """An error message naming the keys that do not fit and what to do about it (arguments
    as :func:`~locat_mm.models.ckpt_convert.describe_mismatch`)."""
    lines = [f'{source} does not fit the backbone ({target}).']
    if missing:
        lines.append(f'Missing keys: {listing(missing, limit)}.')
    if unexpected:
        lines.append(f'Unexpected keys: {listing(unexpected, limit)}.')
    lines += mismatch_hints(missing, unexpected, shapes or {},
                            r'^stages\.\d+\.blocks\.\d+\.', 'Swin',
                            'embed_dims, depths, num_heads')
    return ' '.join(lines)


def convert_timm_swin_classifier(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """A timm-layout LocAtSwin/Swin classifier in the layout of an mmpretrain
    ``ImageClassifier`` (``LocAtSwin`` backbone, ``GlobalAveragePooling``, ``LinearClsHead``):
    ``backbone.*`` and ``head.fc.*``.

    Raises:
        ValueError: The state dict is not a timm-layout Swin classifier.
    """
    keys = list(state_dict)
    if not is_timm_swin_layout(keys) or 'patch_embed.proj.weight' not in state_dict:
        raise ValueError(
            'not a LocAtSwin/Swin checkpoint in the reference (timm) layout: expected keys '
            f'layers.{{i}}.blocks.{{j}}.*, patch_embed.proj.weight; got {keys[:6]} ...')
    foreign = [k for k in keys if not _TIMM_SWIN_KEY.match(k)]
    if foreign:
        raise ValueError(
            f'the checkpoint has keys no LocAtSwin/Swin classifier has: {foreign[:8]}'
            f'{" ..." if len(foreign) > 8 else ""} ({len(foreign)} in all); it is another '
            'architecture (e.g. with an absolute position embedding).')
    return OrderedDict((k if k.startswith(MM_SWIN_HEAD_PREFIX) else 'backbone.' + k, v)
                       for k, v in convert_timm_swin_state_dict(state_dict).items())


def swin_classifier_meta(state_dict: Dict[str, Tensor], source: str) -> dict:
    """What a config needs to know about a converted checkpoint (read from the tensors)."""
    depths = {}
    for key in state_dict:
        match = re.match(r'^backbone\.stages\.(\d+)\.blocks\.(\d+)\.', key)
        if match:
            stage, block = map(int, match.groups())
            depths[stage] = max(depths.get(stage, 0), block + 1)
    head = state_dict.get(MM_SWIN_HEAD_PREFIX + 'weight')
    return dict(
        source=source,
        converter='locat_mm.models.swin_ckpt_convert.convert_timm_swin_classifier_file',
        gaug=any('.gaug.' in k for k in state_dict),
        embed_dims=int(state_dict['backbone.patch_embed.projection.weight'].shape[0]),
        depths=[depths[i] for i in sorted(depths)],
        num_classes=None if head is None else int(head.shape[0]))


def convert_timm_swin_classifier_file(src: str, dst: str) -> dict:
    """Reads ``src``, converts it and writes ``dst`` atomically; returns the meta dict.

    Raises:
        ValueError: ``dst`` is ``src``, or ``src`` is not a timm-layout LocAtSwin/Swin.
    """
    return convert_classifier_file(src, dst, convert_timm_swin_classifier, swin_classifier_meta)
