"""The rules both backbones follow to read a config written for mmpretrain or mmseg.

One place for: which toolbox's conventions a config was written for (:func:`resolve_toolbox`),
``pretrained`` -> ``init_cfg`` (:func:`merge_pretrained`), ``init_cfg`` as a list
(:func:`init_cfg_list`), ``out_indices`` and ``img_size`` parsing, the mmcv registry configs
as the builders the torch-only layers take, and the argument checks, with errors catchable as
upstream's (:mod:`locat_mm.errors`). Each class's own conventions are data
(:class:`Conventions`) in ``vit_args.py`` and ``swin_args.py``.
"""
import math
import numbers
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import (Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch import Tensor

from ...errors import ArgumentError, ArgumentTypeError

TOOLBOXES = ('mmpretrain', 'mmseg')


@dataclass(frozen=True)
class Conventions:
    """One toolbox's conventions for one backbone class.

    Attributes:
        toolbox (str): ``'mmpretrain'`` or ``'mmseg'``.
        only_args (tuple[str]): Arguments only this toolbox's class has; passing any of them
            marks a config written for it.
        defaults (dict): What this toolbox's class does when a config leaves an argument out,
            for the arguments whose defaults differ between the toolboxes.
    """
    toolbox: str
    only_args: Tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)


# (class, toolbox, reason) already logged: the choice is logged once, not once per model.
_LOGGED = set()


def resolve_toolbox(cls_name: str, given: Collection[str], conventions: Mapping[str,
                                                                               Conventions],
                    toolbox: Optional[str] = None) -> str:
    """Whose conventions a backbone follows: ``'mmpretrain'`` or ``'mmseg'``.

    In order: ``toolbox`` when given; the toolbox whose only-arguments were passed; mmseg
    inside mmseg's default scope (its Runner, ``init_default_scope('mmseg')``); else
    mmpretrain. ``pretrained`` marks nothing (mmseg's ``EncoderDecoder`` passes it to any
    backbone). The choice and its reason are logged once per class.

    Args:
        cls_name (str): The backbone class, for messages.
        given (Collection[str]): Names of the arguments the config set.
        conventions (Mapping[str, Conventions]): The class's conventions per toolbox.
        toolbox (str, optional): An explicit choice.

    Raises:
        ArgumentError: An unknown ``toolbox``, or arguments only each toolbox has without one.
    """
    if toolbox is not None:
        if toolbox not in TOOLBOXES:
            raise ArgumentError(f'toolbox must be one of {TOOLBOXES} or None, got {toolbox!r}')
        return _log_choice(cls_name, toolbox, 'toolbox=' + repr(toolbox))
    marks = {name: [arg for arg in conv.only_args if arg in given]
             for name, conv in conventions.items()}
    marked = [name for name in TOOLBOXES if marks.get(name)]
    if len(marked) > 1:
        listed = '; '.join(f"{name}'s ({', '.join(marks[name])})" for name in marked)
        raise ArgumentError(
            f'{cls_name} got arguments that only one toolbox\'s class has, from both: {listed}. '
            "use one interface, or set toolbox='mmseg' or 'mmpretrain' to say whose defaults "
            'apply.')
    if marked:
        return _log_choice(cls_name, marked[0], f'argument {marks[marked[0]][0]}')
    scope = DefaultScope.get_current_instance()
    if scope is not None and scope.scope_name == 'mmseg':
        return _log_choice(cls_name, 'mmseg', "mmseg's default scope")
    return _log_choice(cls_name, 'mmpretrain', 'no mmseg-only argument, not in mmseg\'s scope')


def _log_choice(cls_name: str, toolbox: str, reason: str) -> str:
    if (cls_name, toolbox, reason) not in _LOGGED:
        _LOGGED.add((cls_name, toolbox, reason))
        MMLogger.get_current_instance().info(
            f"{cls_name}: {toolbox}'s conventions ({reason}); set toolbox= to choose.")
    return toolbox


def merge_pretrained(init_cfg: Any, pretrained: Any) -> Any:
    """mmseg's ``pretrained`` argument as an ``init_cfg``, as mmseg's backbones read it.

    A path becomes ``dict(type='Pretrained', checkpoint=pretrained)`` with mmseg's deprecation
    warning. ``init_cfg`` is otherwise returned as given: its type is checked when the
    weights are initialised (:func:`init_cfg_list`), as upstream checks it.

    Raises:
        ArgumentError: Both set.
        ArgumentTypeError: ``pretrained`` neither a str nor None.
    """
    if pretrained is None:
        return init_cfg
    if init_cfg:
        raise ArgumentError('init_cfg and pretrained cannot be set at the same time: '
                            "use init_cfg=dict(type='Pretrained', checkpoint=...)")
    if not isinstance(pretrained, str):
        raise ArgumentTypeError(
            f'pretrained must be a str (a checkpoint path) or None, got {type(pretrained)}')
    warnings.warn('DeprecationWarning: pretrained is deprecated, please use "init_cfg" instead')
    return dict(type='Pretrained', checkpoint=pretrained)


def init_cfg_list(init_cfg: Any) -> List[dict]:
    """An ``init_cfg`` (None, a dict or a list of dicts) as a list of dicts.

    Raises:
        ArgumentTypeError: Anything else (as mmengine's ``initialize``).
    """
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg] if init_cfg else []
    if not all(isinstance(cfg, dict) for cfg in cfgs):
        raise ArgumentTypeError(
            f'init_cfg must be a dict or a list of dicts, got {init_cfg!r}')
    return list(cfgs)


def parse_out_indices(out_indices: Union[int, Sequence[int]], num: int,
                      unit: str) -> Tuple[int, ...]:
    """``out_indices`` (an int or a sequence; negative entries count from the end) as indices
    into ``num`` ``unit``s.

    Raises:
        ArgumentTypeError: Not an int or a sequence of ints.
        ArgumentError: An entry out of range.
    """
    if isinstance(out_indices, numbers.Integral) and not isinstance(out_indices, bool):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or isinstance(out_indices, str) or not all(
            isinstance(i, numbers.Integral) for i in out_indices):
        raise ArgumentTypeError('out_indices must be an int or a sequence of ints, get '
                                f'{type(out_indices)} instead')
    parsed = []
    for index in out_indices:
        resolved = index + num if index < 0 else index
        if not 0 <= resolved < num:
            raise ArgumentError(f'Invalid out_indices {index}: out of range for {num} {unit} '
                                '(negative entries count from the end)')
        parsed.append(int(resolved))
    return tuple(parsed)


def parse_size(name: str, size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """An image size (an int, or a sequence of one or two ints) as ``(height, width)``.

    Raises:
        ArgumentTypeError: Not an int or a sequence of ints.
        ArgumentError: More than two values, or a value below 1.
    """
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, Sequence) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size):
        raise ArgumentTypeError(f'{name} must be an int or a tuple of one or two ints, got '
                                f'{size!r}')
    if not 1 <= len(size) <= 2:
        raise ArgumentError(f'{name} must be an int or a tuple of one or two ints (height, '
                            f'width), got {len(size)} values: {tuple(size)}')
    size = tuple(int(s) for s in size) * (3 - len(size))
    if min(size) < 1:
        raise ArgumentError(f'{name} must be positive, got {size}')
    return size


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int of at least ``minimum``; else an error naming ``name``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ArgumentTypeError(f'{name} must be an int, got {value!r}')
    if value < minimum:
        raise ArgumentError(f'{name} must be at least {minimum}, got {value}')
    return int(value)


def check_rate(name: str, value: Any) -> float:
    """``value`` if it is a probability in [0, 1] (a dropout or stochastic-depth rate)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ArgumentTypeError(f'{name} must be a number in [0, 1], got {value!r}')
    if not 0 <= value <= 1 or math.isnan(value):
        raise ArgumentError(f'{name} must be in [0, 1] (a probability), got {value}')
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool (``'yes'`` or ``1`` are refused: a config typo must not switch
    a method on or off silently)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f'{name} must be True or False, got {value!r}')
    return value


def check_input_channels(model_cfg: Mapping, data_preprocessor: Optional[Mapping] = None) -> None:
    """Refuses a model config whose backbone's ``in_channels`` differs from the number of
    channels its data preprocessor normalises (the length of ``mean``), before anything is
    built or written.

    Args:
        model_cfg (Mapping): A classifier or segmentor config (``cfg.model``); configs without
            a backbone or a preprocessor ``mean`` are not checked.
        data_preprocessor (Mapping, optional): The config's top-level ``data_preprocessor``
            (mmpretrain's configs keep it there), used when ``model_cfg`` has none.

    Raises:
        ArgumentError: The counts differ.
    """
    backbone = model_cfg.get('backbone')
    preprocessor = model_cfg.get('data_preprocessor') or data_preprocessor
    if not isinstance(backbone, Mapping) or not isinstance(preprocessor, Mapping):
        return
    mean = preprocessor.get('mean')
    if not isinstance(mean, Sequence):
        return
    in_channels = backbone.get('in_channels', 3)
    if in_channels != len(mean):
        raise ArgumentError(
            f'model.backbone.in_channels is {in_channels} but the data preprocessor normalises '
            f'{len(mean)} channels (mean={list(mean)}): set model.backbone.in_channels='
            f'{len(mean)}, or give the preprocessor one mean and std per input channel.')


def check_input_channels_at_run_time(x: Tensor, in_channels: int, cls_name: str) -> None:
    """Refuses images (B, C, H, W) whose C is not the backbone's ``in_channels``, with a
    message naming the argument (the convolution's own error names neither)."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ArgumentError(
            f'{cls_name} was built with in_channels={in_channels} and got images of shape '
            f'{tuple(x.shape)} (B, C, H, W): set in_channels to the images\' channel count.')


def norm_builder(norm_cfg: Optional[dict]) -> Optional[Callable[[int], nn.Module]]:
    """``norm_cfg`` (mmcv registry) -> a callable building the norm for a width (None: none)."""
    if norm_cfg is None:
        return None
    return lambda num_features: build_norm_layer(norm_cfg, num_features)[1]


def act_builder(act_cfg: dict) -> Callable[[], nn.Module]:
    """``act_cfg`` (mmcv registry) -> a callable building the activation."""
    return partial(build_activation_layer, act_cfg)


def given_args(values: Dict[str, Any]) -> List[str]:
    """Names of the arguments set (not None) in a constructor's ``locals()``."""
    return [name for name, value in values.items() if value is not None and name != 'self']
