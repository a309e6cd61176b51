"""What every backbone (LocAtViT, LocAtSwin, LocAtRoPEViT, LocAtJumbo) shares as toolbox glue:
one initialisation order, reading a backbone's pretrained weights through its family's adapter
(``adapt_vit_state_dict``, ``adapt_swin_state_dict``, ``adapt_ropevit_state_dict``,
``adapt_jumbo_state_dict``: pure functions beside the key maps), the grids that travel with the
weights, and reporting keys that do not fit."""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model.weight_init import initialize
from torch import Tensor

from ...checkpoint import CheckpointMismatchError, load_checkpoint, shape_mismatches
from ...layers.gaug import GaussianAugmentation
from ..ckpt_convert import (GAUG_GRID_KEY, POS_GRID_META, resolve_prefix, select_prefix,
                            strip_wrapper_prefix, unwrap_state_dict)
from ..ckpt_describe import describe_backbone
from .interface import init_cfg_list

# adapter(state_dict, model, metadata) -> the state dict in the model's layout and geometry.
Adapter = Callable[[Dict[str, Tensor], nn.Module, dict], Dict[str, Tensor]]
Mismatch = Callable[[Iterable[str], Iterable[str]], Tuple[list, list]]
Describe = Callable[..., str]


def split_init_cfg(init_cfg: Union[dict, Sequence[dict], None]) -> Tuple[List[dict],
                                                                         Optional[dict]]:
    """An ``init_cfg`` (None, a dict or a list of dicts) as its non-``Pretrained`` entries and
    its ``Pretrained`` entry (None without one).

    Raises:
        ValueError: More than one ``Pretrained`` entry.
        TypeError: ``init_cfg`` is not a dict or a list of dicts.
    """
    cfgs = init_cfg_list(init_cfg)
    pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError('init_cfg has more than one Pretrained entry')
    return [cfg for cfg in cfgs if cfg.get('type') != 'Pretrained'], \
        (pretrained[0] if pretrained else None)


def init_backbone(model: nn.Module, as_reference: Callable[[], None],
                  as_upstream: Callable[[], None], load: Callable[..., None]) -> None:
    """``init_weights`` of both backbones, in one order (mmengine's: a Pretrained entry last).

    1. The scheme. Without init_cfg entries other than ``Pretrained``: ``as_reference``, the
       authors' (timm) initialisation. With some (e.g. mmpretrain's base configs'
       ``[dict(type='Kaiming', layer='Conv2d', ...)]``): those entries (mmengine
       ``initialize``), then ``as_upstream``, what the toolbox's own backbone initialises after
       them (its layers' ``init_weights`` run after their parent's ``init_cfg``).
    2. GAug's maps at the authors' start (:meth:`GaussianAugmentation.reset_parameters`:
       variance 1 and amplitude softplus(0) for a query at 0), whatever the entries did to
       ``nn.Linear`` layers: an entry in a toolbox config is written for the toolbox's layers.
    3. ``dict(type='Pretrained', checkpoint=PATH, prefix=None, map_location='cpu',
       strict=True, pos_embed_grid=None)``: ``load(checkpoint, prefix=..., map_location=...,
       strict=..., pos_embed_grid=...)``, so weights the checkpoint lacks (``strict=False``)
       keep the start of steps 1 and 2.
    """
    entries, pretrained = split_init_cfg(model.init_cfg)
    if entries:
        initialize(model, entries)
        as_upstream()
    else:
        as_reference()
    for module in model.modules():
        if isinstance(module, GaussianAugmentation):
            module.reset_parameters()
    if pretrained is not None:
        load(pretrained['checkpoint'], prefix=pretrained.get('prefix'),
             map_location=pretrained.get('map_location', 'cpu'),
             strict=pretrained.get('strict', True),
             pos_embed_grid=pretrained.get('pos_embed_grid'))
    model._is_init = True


def read_backbone_checkpoint(checkpoint: str, prefix: Optional[str],
                             map_location: str = 'cpu') -> Tuple[Dict[str, Tensor], dict]:
    """The backbone's tensors in a checkpoint file, read through the safe loader, and the
    local metadata its state dict keeps for the backbone module (``{}`` when none).

    A ``module.`` before every key (a ``DistributedDataParallel`` wrapper) is dropped.

    Args:
        checkpoint (str): Path or URL (anything mmengine's loaders read).
        prefix (str, optional): Where the backbone sits; by default ``backbone.`` when present,
            else the whole state dict.
        map_location (str): Device to load tensors to.
    """
    try:
        raw = load_checkpoint(checkpoint, map_location=map_location)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'Pretrained checkpoint {checkpoint!r} not found: set '
            'model.backbone.init_cfg.checkpoint to an existing file (or remove init_cfg '
            'to train from scratch).') from err
    wrapped = unwrap_state_dict(raw)
    state_dict = strip_wrapper_prefix(wrapped)
    prefix = resolve_prefix(state_dict, prefix)
    owner = ('module.' if state_dict is not wrapped else '') + prefix
    metadata = getattr(wrapped, '_metadata', None) or {}
    return dict(select_prefix(state_dict, prefix)), dict(metadata.get(owner[:-1], {}))


def load_backbone(model: nn.Module, checkpoint: str, adapt: Adapter, mismatch: Mismatch,
                  describe: Describe, prefix: Optional[str] = None, map_location: str = 'cpu',
                  strict: bool = True,
                  pos_embed_grid: Optional[Sequence[int]] = None) -> None:
    """Loads backbone weights from a checkpoint file through the family's adapter.

    Args:
        model (nn.Module): The backbone.
        checkpoint (str): Path or URL (anything mmengine's loaders read).
        adapt (callable): The family's adapter (layouts, geometry).
        mismatch, describe (callable): The family's key check and its message.
        prefix (str, optional): Where the backbone sits in the checkpoint; by default
            ``backbone.`` when present, else the whole state dict.
        map_location (str): Device to load tensors to.
        strict (bool): Raise on keys that do not fit (those the family excuses aside); with
            False they are only logged.
        pos_embed_grid (Sequence[int], optional): The patch grid (H, W) of the checkpoint's
            position embedding, for a checkpoint that does not record it and whose token count
            does not tell it.
    """
    state_dict, metadata = read_backbone_checkpoint(checkpoint, prefix, map_location)
    if pos_embed_grid is not None:
        metadata[POS_GRID_META] = tuple(pos_embed_grid)
    adapted = adapt(state_dict, model, metadata)
    own = model.state_dict()
    check_fit(own, adapted, checkpoint, mismatch, describe, strict)
    # Adapted already: loaded without the file's metadata, the load hook finds nothing to do.
    model.load_state_dict({k: v for k, v in adapted.items() if k in own}, strict=False)
    MMLogger.get_current_instance().info(f'{type(model).__name__}: loaded {checkpoint}')


def adapt_in_place(model: nn.Module, adapt: Adapter, state_dict: Dict[str, Tensor],
                   prefix: str, local_metadata: Optional[dict]) -> Dict[str, Tensor]:
    """The body of every backbone's load pre-hook: ``adapt`` applied to the keys under
    ``prefix`` of the ``state_dict`` being loaded, in place, then ``model``'s GAug set to the
    grid the weights were trained on when they carry one (``gaug_base_grid``,
    :func:`apply_gaug_grid`); returns the adapted keys (without ``prefix``). With no key
    under ``prefix`` (e.g. another model's checkpoint) nothing is adapted or added: the
    adapter's ``gaug_base_grid`` would otherwise count as a key the checkpoint fits."""
    own = [key for key in state_dict if key.startswith(prefix)]
    if not own:
        return {}
    adapted = adapt({key[len(prefix):]: state_dict.pop(key) for key in own}, model,
                    local_metadata or {})
    state_dict.update((prefix + key, value) for key, value in adapted.items())
    if GAUG_GRID_KEY in adapted:
        apply_gaug_grid(model, adapted[GAUG_GRID_KEY].tolist())
    return adapted


class AdaptedLoading:
    """Mixin of a backbone whose checkpoints are read through its family's adapter (class
    attributes: ``adapt_state_dict``, an :data:`Adapter`; ``mismatched_keys`` and
    ``describe_mismatch``, the key check and its message): ``load_pretrained`` and the load
    pre-hook ``_adapt_state_dict`` (register it in ``__init__``)."""
    adapt_state_dict: Adapter
    mismatched_keys: Mismatch
    describe_mismatch: Describe

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu',
                        strict: bool = True,
                        pos_embed_grid: Optional[Sequence[int]] = None) -> None:
        """Loads backbone weights from a checkpoint file (:func:`load_backbone` with the
        family's adapter).

        Args:
            checkpoint (str): Path or URL (anything mmengine's loaders read).
            prefix (str, optional): Where the backbone sits in the checkpoint; by default
                ``backbone.`` when present, else the whole state dict.
            map_location (str): Device to load tensors to.
            strict (bool): Raise on keys that do not fit (those the family excuses aside: a
                classifier, output norms the backbone lacks); with False they are only logged.
            pos_embed_grid (Sequence[int], optional): Grid (H, W) of the checkpoint's
                (absolute) position embedding, where neither the checkpoint nor its token count
                tells it.
        """
        load_backbone(self, checkpoint, self.adapt_state_dict, self.mismatched_keys,
                      self.describe_mismatch, prefix, map_location, strict, pos_embed_grid)

    def _adapt_state_dict(self, state_dict: Dict[str, Tensor], prefix: str,
                          local_metadata: Optional[dict] = None, *args, **kwargs) -> None:
        """Load pre-hook (so ``load_state_dict`` and ``load_from`` read every layout the
        adapter reads): :func:`adapt_in_place` with the family's adapter."""
        adapt_in_place(self, self.adapt_state_dict, state_dict, prefix, local_metadata)


def record_geometry(model: nn.Module, gaug_grid: Optional[Tuple[int, int]]) -> None:
    """Makes ``model``'s checkpoints carry its grids (call once, after building its layers).

    - ``gaug_base_grid`` (with ``gaug_grid`` given and GAug in the model): a buffer, the grid
      its GAug maps were trained on: ``gaug_grid`` at first, a checkpoint's when one is loaded
      (:func:`apply_gaug_grid`), so it travels with the weights through every save and load.
    - ``pos_embed_grid``: ``model.patch_resolution``, written into the state dict's local
      metadata of the backbone (no key: the state dict keeps upstream's keys), the grid of its
      position embedding.
    """
    if gaug_grid is not None and any(isinstance(m, GaussianAugmentation)
                                     for m in model.modules()):
        model.register_buffer(GAUG_GRID_KEY,
                              torch.tensor(gaug_grid, dtype=torch.long, device='cpu'))
    model._register_state_dict_hook(_record_pos_embed_grid)


def _record_pos_embed_grid(module: nn.Module, state_dict: Dict[str, Tensor], prefix: str,
                           local_metadata: dict) -> None:
    local_metadata[POS_GRID_META] = tuple(int(s) for s in module.patch_resolution)


def apply_gaug_grid(model: nn.Module, grid: Any) -> None:
    """Runs every GAug layer of ``model`` on ``grid`` (the grid its weights were trained on);
    one log line when that differs from the grid of ``img_size``."""
    grid = tuple(int(side) for side in grid)
    changed = False
    for module in model.modules():
        if isinstance(module, GaussianAugmentation) and module.base_grid != grid:
            module.set_base_grid(grid)
            changed = True
    if changed and grid != tuple(model.patch_resolution):
        MMLogger.get_current_instance().info(
            f'{type(model).__name__}: GAug runs on the grid its weights were trained on, '
            f'{grid[0]}x{grid[1]}, not on img_size\'s {model.patch_resolution[0]}x'
            f'{model.patch_resolution[1]} (its variances scale with the input from there).')


def check_fit(model_state: Dict[str, Tensor], ckpt_state: Dict[str, Tensor], checkpoint: str,
              mismatch: Mismatch, describe: Describe, strict: bool) -> None:
    """Raises :class:`CheckpointMismatchError` (a ``KeyError``; ``strict``) or logs a warning
    naming the keys that do not fit.

    The message says what the checkpoint and the backbone are (family, width, depth, GAug)
    and names missing, unexpected and other-shaped keys. With ``strict=False`` the keys of
    other shapes are dropped from ``ckpt_state``, so that what fits loads.
    """
    missing, unexpected = mismatch(model_state, ckpt_state)
    shapes = shape_mismatches(model_state, ckpt_state)
    if missing or unexpected or shapes:
        message = describe(missing, unexpected,
                           f'Checkpoint {checkpoint!r} ({describe_backbone(ckpt_state)})',
                           shapes=shapes, target=describe_backbone(model_state))
        if strict:
            raise CheckpointMismatchError(message)
        MMLogger.get_current_instance().warning(message)
        for key in shapes:
            del ckpt_state[key]

