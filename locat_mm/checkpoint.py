"""The one way this project reads checkpoint files: ``torch.load`` with ``weights_only=True``.

A checkpoint is a pickle, and a pickle can run any code when it is read. Users download the
authors' weights from the internet, so every reader here (the backbone's ``init_cfg``, the
timm converter, ``tools/test.py``, resume through mmengine's Runner, the visualisation tool)
goes through :func:`load_checkpoint`, which lets the pickle build tensors, containers and the
few exact classes mmengine's own checkpoints hold (:func:`mmengine_safe_globals`), nothing else.

A file that needs anything more is refused with :class:`UntrustedCheckpointError`. If you
trust where it came from, load it anyway with ``--trust-checkpoint`` (the tools), the
environment variable ``LOCAT_MM_TRUST_CHECKPOINT=1`` (anything, also the Runner and
``init_cfg``), or ``load_checkpoint(..., trust=True)``.

Importable with torch alone; mmengine's loaders are guarded only when mmengine is installed
(:func:`guard_mmengine_loaders`, run by ``import locat_mm``).
"""
import contextlib
import functools
import importlib.util
import logging
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Callable, Iterator, List, Optional, Union

import torch

TRUST_ENV = 'LOCAT_MM_TRUST_CHECKPOINT'
_TRUE = ('1', 'y', 'yes', 'true', 'on')
# HistoryBuffer's statistics methods (functions of the class, kept in a dict on each buffer)
# pickle by qualified name, as getattr(HistoryBuffer, name).
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')
# numpy dtypes mmengine's message hub and meta hold (logged scalars, seeds).
_NUMPY_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'float16', 'float32', 'float64')

logger = logging.getLogger(__name__)


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint that holds more than weights: loading it would run code from the file."""


def trusted_by_environment() -> bool:
    """True when ``LOCAT_MM_TRUST_CHECKPOINT`` says to load checkpoints without the safe loader."""
    return os.environ.get(TRUST_ENV, '').strip().lower() in _TRUE


def trust_checkpoints() -> None:
    """What ``--trust-checkpoint`` does: trusts every checkpoint this process (and the
    processes it starts) loads, through ``LOCAT_MM_TRUST_CHECKPOINT``."""
    os.environ[TRUST_ENV] = '1'


def _history_buffer_method(owner: Any, name: str) -> Callable:
    """Stands in for ``getattr`` while unpickling: only HistoryBuffer's statistics methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is not HistoryBuffer or name not in _HISTORY_BUFFER_METHODS:
        raise UntrustedCheckpointError(
            f'the checkpoint asks for attribute {name!r} of {owner!r}; only '
            f'HistoryBuffer.{{{",".join(_HISTORY_BUFFER_METHODS)}}} are allowed')
    return getattr(HistoryBuffer, name)


@functools.lru_cache(maxsize=None)
def mmengine_safe_globals() -> List[Union[type, Callable, tuple]]:
    """The exact globals an mmengine checkpoint needs beyond torch's own allow-list.

    mmengine's message hub pickles ``HistoryBuffer`` objects (whose statistics methods are
    pickled via ``builtins.getattr``: allowed here only as :func:`_history_buffer_method`), numpy arrays and scalars of logged values and seeds, and
    their dtypes. Empty without mmengine.
    """
    if importlib.util.find_spec('mmengine') is None:
        return []
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = (getattr(np, '_core', None) or np.core).multiarray
    dtype_classes = [type(np.dtype(name)) for name in _NUMPY_DTYPES]
    return [
        HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), np.ndarray, np.dtype,
        multiarray._reconstruct, multiarray.scalar, *dtype_classes
    ]


def _refusal(source: str, err: Exception) -> UntrustedCheckpointError:
    # torch wraps the unpickler's reason in paragraphs of advice; keep only the reason.
    reason = str(err).split('WeightsUnpickler error:')[-1].strip().split('\n')[0][:300]
    return UntrustedCheckpointError(
        f'Refusing to load {source!r}: it holds more than weights and loading it could run code '
        f'from the file ({reason}). If you '
        'trust where it came from, load it with --trust-checkpoint (tools/train.py, '
        'tools/test.py, the converter, the visualisation tool), or set the environment variable '
        f'{TRUST_ENV}=1 (anything: the Runner, init_cfg), or call '
        'locat_mm.checkpoint.load_checkpoint(..., trust=True). Re-saving its state dict with '
        'torch.save from a trusted session gives a file that loads safely.')


@contextlib.contextmanager
def loading_policy(source: str, trust: Optional[bool] = None) -> Iterator[bool]:
    """Inside it, every ``torch.load`` is ``weights_only=True`` with the mmengine allow-list.

    With ``trust`` (default: :func:`trusted_by_environment`) loads that do not pass
    ``weights_only`` read full pickles instead. A refused pickle raises
    :class:`UntrustedCheckpointError` naming ``source`` and the way out.

    Yields:
        bool: Whether the source is trusted.
    """
    trust = trusted_by_environment() if trust is None else trust
    forced = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' if trust else 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'
    other = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' if trust else 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
    saved = {name: os.environ.get(name) for name in (forced, other)}
    os.environ[forced] = '1'
    os.environ.pop(other, None)
    if trust:
        logger.warning('loading %s as a trusted checkpoint (%s): its pickle may run code',
                       source, TRUST_ENV)
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            yield trust
    except pickle.UnpicklingError as err:
        if isinstance(err, UntrustedCheckpointError):
            raise
        raise _refusal(source, err) from err
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_checkpoint(filename: str,
                    map_location: Union[str, torch.device, None] = 'cpu',
                    trust: Optional[bool] = None,
                    mmap: bool = False) -> Any:
    """Reads a checkpoint file safely (see the module docstring).

    Args:
        filename (str): A local path, or with mmengine installed anything its
            ``CheckpointLoader`` reads (``https://``, ``open-mmlab://``, ...).
        map_location: Where to put the tensors, as for ``torch.load``.
        trust (bool, optional): Read full pickles (only for files you trust). Default:
            the environment variable ``LOCAT_MM_TRUST_CHECKPOINT``.
        mmap (bool): Map a local file's tensors instead of reading them: a look at its keys
            and shapes that costs the pickle only (files of torch's zip format; others are
            read whole).

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: A local path that does not exist.
        UntrustedCheckpointError: The file needs more than the safe loader allows.
    """
    local = osp.expanduser(filename) if isinstance(filename, str) else filename
    if not isinstance(local, str) or osp.isfile(local) \
            or importlib.util.find_spec('mmengine') is None:
        if isinstance(local, str) and not osp.isfile(local):
            raise FileNotFoundError(f'checkpoint {filename!r} not found')
        with loading_policy(str(filename), trust) as trusted:
            mmap = mmap and isinstance(local, str) and zipfile.is_zipfile(local)
            return torch.load(
                local, map_location=map_location, weights_only=not trusted, mmap=mmap or None)
    from mmengine.runner.checkpoint import CheckpointLoader
    with loading_policy(filename, trust):
        return CheckpointLoader.load_checkpoint(filename, map_location)


def guard_mmengine_loaders() -> None:
    """Routes every loader of mmengine's ``CheckpointLoader`` through :func:`loading_policy`.

    So the Runner's ``load_from`` and resume, ``load_checkpoint`` and OpenMMLab ``init_cfg``
    read files as :func:`load_checkpoint` does. Safe to call twice.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if getattr(loader, '_locat_guarded', False):
            continue

        @functools.wraps(loader)
        def guarded(filename, *args, _loader=loader, **kwargs):
            with loading_policy(filename):
                return _loader(filename, *args, **kwargs)

        guarded._locat_guarded = True
        CheckpointLoader.register_scheme(prefix, guarded, force=True)
