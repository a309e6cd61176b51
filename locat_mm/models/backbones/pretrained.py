"""What LocAtViT and LocAtSwin share as toolbox glue: reading a backbone's pretrained weights,
reporting keys that do not fit, and resolving ``out_indices``."""
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

from mmengine.logging import MMLogger
from torch import Tensor

from ...checkpoint import CheckpointMismatchError, load_checkpoint, shape_mismatches
from ..ckpt_convert import select_prefix, unwrap_state_dict
from ..ckpt_describe import describe_backbone


def read_backbone_state_dict(checkpoint: str, prefix: Optional[str],
                             map_location: str = 'cpu') -> Dict[str, Tensor]:
    """The backbone's tensors in a checkpoint file, read through the safe loader.

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
    return dict(select_prefix(unwrap_state_dict(raw), prefix))


def check_fit(model_state: Dict[str, Tensor], ckpt_state: Dict[str, Tensor], checkpoint: str,
              mismatch: Callable[[Iterable[str], Iterable[str]], Tuple[list, list]],
              describe: Callable[..., str], strict: bool) -> None:
    """Raises ``KeyError`` (``strict``) or logs a warning naming the keys that do not fit.

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


def parse_out_indices(out_indices: Union[int, Sequence[int]], num: int,
                      unit: str) -> Tuple[int, ...]:
    """``out_indices`` (negative counting from the end) as indices into ``num`` ``unit``s."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    parsed = []
    for index in out_indices:
        resolved = index + num if index < 0 else index
        if not 0 <= resolved < num:
            raise ValueError(f'out_indices entry {index} is out of range for {num} {unit}')
        parsed.append(resolved)
    return tuple(parsed)
