"""Reading LocAtViT weights: the authors' timm layout, mmseg's ViT layout, and fit checks.

mmpretrain's ``VisionTransformer`` layout is this project's own and needs no map.
"""
import os
import os.path as osp
import re
import tempfile
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch
from torch import Tensor

from ..checkpoint import describe_shapes, load_checkpoint
from ..hub import (check_release_fits, is_hub_name, read_release, release_architecture,
                   select_metadata)
from ..layers.patch_embed import resize_pos_embed
from .ckpt_geometry import source_grid

# (pattern, replacement) from the reference's (timm) key names to this project's.
_TIMM_TO_MM = (
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.', r'layers.\1.attn.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
    (r'^fc_norm\.', 'ln2.'),
)

# (pattern, replacement) from mmseg's VisionTransformer key names to this project's: mmseg's
# blocks use nn.MultiheadAttention, whose in_proj stacks q, k, v in the same order as qkv.
_MMSEG_TO_MM = (
    (r'^layers\.(\d+)\.attn\.attn\.in_proj_', r'layers.\1.attn.qkv.'),
    (r'^layers\.(\d+)\.attn\.attn\.out_proj\.', r'layers.\1.attn.proj.'),
    (r'^ln_pre\.', 'pre_norm.'),
)

# Keys of a classification readout that a backbone may lack without the checkpoint being
# from another model: the classifier, and final norms the backbone was built without.
READOUT_KEY = re.compile(r'^(head|ln1|ln2)\.')


def is_timm_layout(keys: Iterable[str]) -> bool:
    """True for a state dict in the reference's (timm) layout."""
    return any(key.startswith('blocks.') for key in keys)


def is_mmseg_layout(keys: Iterable[str]) -> bool:
    """True for a state dict of mmseg's ``VisionTransformer`` (nn.MultiheadAttention keys)."""
    return any('.attn.attn.in_proj_' in key for key in keys)


def _rename(key: str, table: Tuple[Tuple[str, str], ...]) -> str:
    for pattern, repl in table:
        new, count = re.subn(pattern, repl, key)
        if count:
            return new
    return key


def convert_timm_key(key: str, first: Tuple[Tuple[str, str], ...] = ()) -> str:
    """One reference (timm) key in this project's layout; unknown keys come back unchanged.

    Args:
        key (str): The key.
        first (tuple): A timm model family's own (pattern, replacement) pairs, tried before
            the ViT map (``family_ckpt_convert.py``: RoPE-ViT's layer scale, Jumbo's MLP).
    """
    return _rename(key, first + _TIMM_TO_MM)


def convert_mmseg_state_dict(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """An mmseg ``VisionTransformer`` state dict in this project's (mmpretrain's) layout."""
    return OrderedDict((_rename(k, _MMSEG_TO_MM), v) for k, v in state_dict.items())


def to_own_layout(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """A backbone state dict in any layout this project reads (timm, mmseg, own) in its own."""
    if is_timm_layout(state_dict):
        return convert_timm_state_dict(state_dict)
    if is_mmseg_layout(state_dict):
        return convert_mmseg_state_dict(state_dict)
    return state_dict


def logger():
    """mmengine's current logger, imported on use: the converters run with torch alone."""
    from mmengine.logging import MMLogger
    return MMLogger.get_current_instance()


# Local-metadata entry (``state_dict._metadata[<backbone prefix>]``) in which a backbone's state
# dict records its position-embedding grid: the token count alone cannot tell 16 x 64 from 32 x 32.
POS_GRID_META = 'pos_embed_grid'
# Buffer of a backbone with GAug: the patch grid (H0, W0) its GAug maps were trained on.
GAUG_GRID_KEY = 'gaug_base_grid'


def adapt_vit_state_dict(state_dict: Dict[str, Tensor], model: Any,
                         metadata: Optional[dict] = None) -> 'OrderedDict[str, Tensor]':
    """A ViT/LocAtViT backbone state dict in any layout this project reads, fitted to ``model``
    (the part of timm's ``checkpoint_filter_fn`` a backbone needs). Pure: ``model`` is read,
    never changed, and ``state_dict`` is not modified.

    - A hub release (``hf-hub:``) must describe ``model``'s architecture
      (:func:`locat_mm.hub.check_release_fits`).
    - Layouts: the authors' (timm), mmseg's ``VisionTransformer`` and this project's (=
      mmpretrain's) keys.
    - ``cls_token`` (and a class-token entry of ``pos_embed``) dropped when ``model`` has no
      class token, as mmpretrain does.
    - ``gaug_base_grid`` (GAug models): kept when the checkpoint has it; else, for a checkpoint
      with GAug weights, the grid of its position embedding (the authors' models run GAug on the
      grid they were built for); else (plain weights, or no position embedding) ``model``'s
      ``img_size`` grid, with a warning when GAug weights are there but no grid is.
    - ``pos_embed`` resized from its grid to ``model.patch_resolution``. The grid is the one the
      checkpoint records (``metadata['pos_embed_grid']``: LocAtViT writes it), else read from
      the token count (:func:`~.ckpt_geometry.source_grid`).

    Args:
        state_dict (dict[str, Tensor]): Backbone keys (prefix already stripped).
        model (LocAtViT): The backbone to load into.
        metadata (dict, optional): The checkpoint's local metadata of the backbone module.

    Returns:
        OrderedDict[str, Tensor]: Keys in this project's layout.

    Raises:
        ValueError: The position embedding's grid cannot be told (see ``source_grid``).
        locat_mm.hub.ReleaseMismatchError: A hub release (``metadata`` says which) of another
            architecture than ``model``.
    """
    check_release_fits(model, metadata)
    out = OrderedDict(to_own_layout(state_dict))
    if model.cls_token is None:
        out.pop('cls_token', None)
    src = None
    if 'pos_embed' in out:
        known = (metadata or {}).get(POS_GRID_META)
        out['pos_embed'], src = _pos_embed_and_grid(out['pos_embed'], model, known)
    add_gaug_grid(out, src, model)
    if src is not None and model.pos_embed is not None:
        out['pos_embed'] = fit_pos_embed(out['pos_embed'], src, model)
    return out


def add_gaug_grid(state_dict: Dict[str, Tensor], pos_grid: Optional[Tuple[int, int]],
                  model: Any) -> None:
    """Adds ``gaug_base_grid`` to an adapter's output (in place) for a ``model`` that has the
    buffer when the checkpoint has none: the grid of its position embedding ``pos_grid`` for
    GAug weights, else ``model``'s (see :func:`adapt_vit_state_dict`)."""
    if hasattr(model, GAUG_GRID_KEY) and GAUG_GRID_KEY not in state_dict:
        state_dict[GAUG_GRID_KEY] = torch.tensor(_trained_gaug_grid(state_dict, pos_grid, model),
                                                 dtype=torch.long)


def fit_pos_embed(pos_embed: Tensor, src: Tuple[int, int], model: Any) -> Tensor:
    """A checkpoint's position embedding (1, P + H*W, C) of patch grid ``src`` resized to
    ``model.patch_resolution`` the way ``model`` resizes its own (``interpolate_mode``,
    ``num_pos_prefix`` prefix entries P kept, ``pos_embed_antialias``); as it is when the
    grids agree."""
    if src == tuple(model.patch_resolution):
        return pos_embed
    logger().info(
        f'Resize the pos_embed shape from {tuple(pos_embed.shape)} (grid '
        f'{src[0]}x{src[1]}) to {tuple(model.pos_embed.shape)}.')
    return resize_pos_embed(pos_embed, src, model.patch_resolution, model.interpolate_mode,
                            model.num_pos_prefix, antialias=model.pos_embed_antialias)


def _pos_embed_and_grid(pos_embed: Tensor, model: Any,
                        known: Optional[Tuple[int, int]]) -> Tuple[Tensor, Tuple[int, int]]:
    """A checkpoint's position embedding with the prefix entries ``model``'s covers, and its
    patch grid."""
    num_prefix = model.num_pos_prefix
    own = tuple(model.patch_resolution) if model.pos_embed is not None else None
    if not model.with_cls_token:
        patches = known[0] * known[1] if known is not None else \
            own[0] * own[1] if own is not None else None
        if patches is not None and pos_embed.shape[1] == patches + num_prefix + 1:
            pos_embed = pos_embed[:, 1:]
    return pos_embed, source_grid(pos_embed.shape[1] - num_prefix, known, own)


def _trained_gaug_grid(state_dict: Dict[str, Tensor], pos_grid: Optional[Tuple[int, int]],
                       model: Any) -> Tuple[int, int]:
    """The grid the GAug maps of a checkpoint without ``gaug_base_grid`` were trained on."""
    if not any('.gaug.' in key for key in state_dict):
        return tuple(model.patch_resolution)
    if pos_grid is not None:
        return pos_grid
    logger().warning(
        'The checkpoint has GAug weights but records no GAug grid and has no position '
        f'embedding to read one from: GAug runs on the grid of img_size, '
        f'{model.patch_resolution[0]}x{model.patch_resolution[1]}. If the weights were '
        'trained at another image size, build the backbone with that img_size.')
    return tuple(model.patch_resolution)


def convert_timm_state_dict(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """A reference (timm-layout) state dict in this project's backbone layout.

    The classifier (``head.*``) keeps its name; see
    ``tools/model_converters/locat_timm2mm.py`` for a whole-classifier conversion.
    """
    return OrderedDict((convert_timm_key(k), v) for k, v in state_dict.items())


def unwrap_state_dict(checkpoint: dict) -> Dict[str, Tensor]:
    """The state dict inside a checkpoint file's object (mmengine, timm or DeiT style)."""
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must hold a dict, got {type(checkpoint).__name__}')
    return checkpoint


def strip_wrapper_prefix(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Without the ``module.`` that a ``DistributedDataParallel`` wrapper puts before every key
    (mmseg's Swin strips it too); other state dicts come back unchanged."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return OrderedDict((k[len('module.'):], v) for k, v in state_dict.items())
    return state_dict


def resolve_prefix(state_dict: Dict[str, Tensor], prefix: Optional[str]) -> str:
    """Where a backbone sits, ending in ``.`` (or ``''``: the whole state dict). With
    ``prefix=None``: ``backbone.`` when a key starts with it, else ``''``."""
    if prefix is None:
        prefix = 'backbone.' if any(k.startswith('backbone.') for k in state_dict) else ''
    return prefix + '.' if prefix and not prefix.endswith('.') else prefix


def select_prefix(state_dict: Dict[str, Tensor],
                  prefix: Optional[str]) -> Dict[str, Tensor]:
    """Keys under ``prefix`` with it stripped.

    With ``prefix=None``, a checkpoint of a whole OpenMMLab model (keys ``backbone.*``) gives its
    backbone, and any other state dict is taken as it is. The state dict's ``_metadata`` (e.g.
    a hub release's architecture, :mod:`locat_mm.hub`) comes along, re-keyed the same way.
    """
    prefix = resolve_prefix(state_dict, prefix)
    picked = OrderedDict(
        (k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
    if prefix and not picked:
        raise ValueError(f'the checkpoint has no key starting with {prefix!r}; '
                         'set `prefix` in init_cfg to where the backbone is stored')
    picked._metadata = select_metadata(state_dict, prefix)
    return picked


def mismatched_keys(model_keys: Iterable[str],
                    ckpt_keys: Iterable[str]) -> Tuple[list, list]:
    """Missing and unexpected keys of a backbone checkpoint, readout keys excused."""
    model_keys, ckpt_keys = set(model_keys), set(ckpt_keys)
    missing = sorted(model_keys - ckpt_keys)
    unexpected = sorted(k for k in ckpt_keys - model_keys if not READOUT_KEY.match(k))
    return missing, unexpected


def listing(keys: list, limit: int = 12) -> str:
    """The first ``limit`` keys, and how many there are when more."""
    shown = ', '.join(keys[:limit])
    return shown + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def units_by_gaug(keys: Iterable[str], unit: str) -> Tuple[set, set]:
    """Blocks (``unit``: a regex of a block's key prefix) among ``keys``: those with only GAug
    keys there (their block exists on both sides, GAug on one) and those with others."""
    only, other = set(), set()
    for key in keys:
        match = re.match(unit, key)
        if match:
            (only if '.gaug.' in key else other).add(match.group(0))
    return only - other, other


def mismatch_hints(missing: list, unexpected: list, shapes: dict, unit: str, family: str,
                   arch: str) -> list:
    """What to change, from where the keys differ: GAug on one side only, another depth,
    other shapes; ``family`` names the plain model, ``arch`` the arch fields to check."""
    plain, missing_blocks = units_by_gaug(missing, unit)
    with_gaug, extra_blocks = units_by_gaug(unexpected, unit)
    hints = []
    if plain:
        hints.append(f'The checkpoint has no GAug weights: it is a plain {family}; build the '
                     'backbone with gaug=False, or start from it with '
                     "init_cfg=dict(type='Pretrained', checkpoint=..., strict=False).")
    if with_gaug:
        hints.append('The checkpoint has GAug weights: build the backbone with gaug=True.')
    if missing_blocks or extra_blocks:
        hints.append(f'Whole blocks differ ({len(missing_blocks)} missing, {len(extra_blocks)} '
                     'unexpected): the depth differs; set it as the checkpoint has it.')
    if shapes:
        hints.append(describe_shapes(shapes) + ' The width, MLP width, heads, patch or window size '
                     'differ: build the backbone as the checkpoint was.')
    if not hints:
        hints.append(f'Check the arch ({arch}) and `prefix` against the checkpoint.')
    return hints


def describe_mismatch(missing: list, unexpected: list, source: str, limit: int = 12,
                      shapes: Optional[dict] = None, target: str = 'this LocAtViT') -> str:
    """An error message naming the keys that do not fit and what to do about it.

    Args:
        missing (list): Backbone keys the checkpoint lacks.
        unexpected (list): Checkpoint keys the backbone lacks (readout keys excused).
        source (str): The checkpoint, as the message names it (and what it is).
        limit (int): Keys listed per kind.
        shapes (dict, optional): Keys of other shapes: key -> (checkpoint's, backbone's).
        target (str): What the backbone is, e.g. ``'a LocAtViT of width 128, depth 4'``.
    """
    lines = [f'{source} does not fit the backbone ({target}; keys in its layout after '
             'conversion).']
    if missing:
        lines.append(f'Missing keys: {listing(missing, limit)}.')
    if unexpected:
        lines.append(f'Unexpected keys: {listing(unexpected, limit)}.')
    if any('.gamma' in k for k in missing + unexpected):
        lines.append('Layer-scale keys (gamma1/gamma2) differ: set layer_scale_init_value > 0 '
                     'exactly when the checkpoint has them.')
    if 'patch_embed.projection.bias' in missing + unexpected:
        lines.append('The patch-embedding bias differs: mmseg configs build none unless '
                     'patch_bias=True (mmpretrain: one unless pre_norm; or patch_cfg bias).')
    if any(k.startswith('pre_norm.') for k in missing + unexpected):
        lines.append('pre_norm differs: build the backbone with pre_norm as the checkpoint was.')
    lines += mismatch_hints(missing, unexpected, shapes or {}, r'^layers\.\d+\.', 'ViT',
                            'width, depth, heads')
    return ' '.join(lines)


# Keys of a reference (timm) ViT/LocAtViT classifier besides the blocks: embeddings, final
# norms, the linear classifier, register tokens. Anything else (q/k norms, distillation heads,
# attention pooling) belongs to a model this project does not implement.
_TIMM_CLASSIFIER_KEY = re.compile(
    r'^(cls_token|reg_token|pos_embed|patch_embed\.proj\.(weight|bias)'
    r'|(norm|fc_norm|head)\.(weight|bias)'
    r'|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|attn\.gaug\.log_var|attn\.gaug\.log_alpha'
    r'|mlp\.fc1|mlp\.fc2)\.(weight|bias))$')

# Where mmpretrain's VisionTransformerClsHead keeps its linear classifier.
MM_HEAD_PREFIX = 'head.layers.head.'


def convert_timm_classifier(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """A reference (timm-layout) LocAtViT/ViT classifier in this project's classifier layout.

    The layout is that of an mmpretrain ``ImageClassifier`` with a ``LocAtViT`` backbone and a
    ``VisionTransformerClsHead``: backbone keys get ``backbone.`` (after
    :func:`convert_timm_state_dict`) and ``head.{weight,bias}`` become
    ``head.layers.head.{weight,bias}``.

    Args:
        state_dict (dict[str, Tensor]): The reference's state dict (SPEC section 4).

    Returns:
        OrderedDict[str, Tensor]: The same tensors under the classifier's key names.

    Raises:
        ValueError: The state dict is not a timm-layout ViT/LocAtViT (no ``blocks.*``, no
            patch embedding, or keys of another architecture).
    """
    keys = list(state_dict)
    if not is_timm_layout(keys) or 'patch_embed.proj.weight' not in state_dict:
        raise ValueError(
            'not a LocAtViT/ViT checkpoint in the reference (timm) layout: expected keys '
            f'blocks.*, patch_embed.proj.weight (SPEC section 4); got {keys[:6]} ...')
    foreign = [k for k in keys if not _TIMM_CLASSIFIER_KEY.match(k)]
    if foreign:
        raise ValueError(
            f'the checkpoint has keys no LocAtViT/ViT classifier has: {foreign[:8]}'
            f'{" ..." if len(foreign) > 8 else ""} ({len(foreign)} in all); it is another '
            'architecture (e.g. with q/k norm or a distillation head).')
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('head.'):
            converted[MM_HEAD_PREFIX + key[len('head.'):]] = value
        else:
            converted['backbone.' + convert_timm_key(key)] = value
    grid = timm_gaug_grid(state_dict)
    if grid is not None:
        converted['backbone.' + GAUG_GRID_KEY] = torch.tensor(grid, dtype=torch.long)
    return converted


def timm_gaug_grid(state_dict: Dict[str, Tensor]) -> Optional[Tuple[int, int]]:
    """The grid the GAug maps of an authors' (timm-layout) LocAtViT were trained on: that of its
    position embedding (their models run GAug on the grid they are built for). None without
    GAug or without a position embedding."""
    pos_embed = state_dict.get('pos_embed')
    if pos_embed is None or not any('.gaug.' in key for key in state_dict):
        return None
    # timm embeds the class token's position unless registers (no_embed_class) or no class.
    num_prefix = int('cls_token' in state_dict and 'reg_token' not in state_dict)
    return source_grid(pos_embed.shape[1] - num_prefix)


def classifier_meta(state_dict: Dict[str, Tensor], source: str) -> dict:
    """What a config needs to know about a converted checkpoint (read from the tensors).

    Args:
        state_dict (dict[str, Tensor]): The converted state dict.
        source (str): The original checkpoint: its absolute path, or its hub name.

    Returns:
        dict: source, GAug present, width, depth, number of classes.
    """
    layers = {k.split('.')[2] for k in state_dict if k.startswith('backbone.layers.')}
    head = state_dict.get('head.layers.head.weight')
    return dict(
        source=source,
        converter='locat_mm.models.ckpt_convert.convert_timm_classifier_file',
        gaug=any('.attn.gaug.' in k for k in state_dict),
        embed_dims=int(state_dict['backbone.patch_embed.projection.weight'].shape[0]),
        num_layers=len(layers),
        num_classes=None if head is None else int(head.shape[0]))


def convert_classifier_file(src: str, dst: str,
                            convert: Callable[[Dict[str, Tensor]], Dict[str, Tensor]],
                            describe: Callable[[Dict[str, Tensor], str], dict]) -> dict:
    """Reads ``src`` (a file, or a hub release ``hf-hub:<repo>[@<revision>]``), converts its
    state dict with ``convert`` and writes ``dst`` atomically with ``describe(state_dict,
    source)`` as ``meta`` (for a release, with what its ``config.json`` says); returns the
    meta dict.

    Raises:
        ValueError: ``dst`` is ``src`` (or whatever ``convert`` raises for another model).
        locat_mm.hub.HubCheckpointError: A release that cannot be read.
    """
    if is_hub_name(src):
        release = read_release(src)
        state_dict = convert(release.state_dict)
        meta = describe(state_dict, src)
        meta.update(release=release_architecture(release.config), hf_hub_config=release.config)
    else:
        if osp.exists(dst) and osp.samefile(src, dst):
            raise ValueError(f'refusing to overwrite the source checkpoint {src}: '
                             'pick another DST')
        state_dict = convert(unwrap_state_dict(load_checkpoint(src)))
        meta = describe(state_dict, osp.abspath(src))
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    # Written next to DST and renamed, so an interrupted run never leaves a truncated DST.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix='.locat_timm2mm_', suffix='.pth')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save({'state_dict': state_dict, 'meta': meta}, f)
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise
    return meta


def convert_timm_classifier_file(src: str, dst: str) -> dict:
    """Reads ``src``, converts it and writes ``dst`` atomically; returns the meta dict.

    Raises:
        ValueError: ``dst`` is ``src``, or ``src`` is not a timm-layout LocAtViT/ViT.
    """
    return convert_classifier_file(src, dst, convert_timm_classifier, classifier_meta)
