"""The one way this project reads checkpoint files: ``torch.load`` with ``weights_only=True``.

A checkpoint is a pickle, and a pickle can run any code when it is read. Users download the
authors' weights from the internet, so every reader here (the backbone's ``init_cfg``, the
timm converter, ``tools/test.py``, resume through mmengine's Runner, the visualisation tool)
goes through :func:`load_checkpoint`, which lets the pickle build tensors, containers and the
few exact classes mmengine's own checkpoints hold (:func:`mmengine_safe_globals`), nothing else.

A file that needs anything more is refused with :class:`UntrustedCheckpointError`. If you
trust where it came from, load it anyway with ``--trust-checkpoint`` (the tools), the
environment variable ``LOCAT_MM_TRUST_CHECKPOINT=1`` (anything, also the Runner and
``init_cfg``), or ``load_checkpoint(..., trust=True)``. A file that is no torch checkpoint at
all (text, an empty or truncated download, safetensors, ...) is refused first, with
:class:`CheckpointFormatError` saying what it is (:func:`identify_file`).

A checkpoint must also fit the model it is loaded into: :func:`check_model_fit` compares a
state dict with a model without loading it, and :class:`CheckpointMismatchError` names what
does not fit, summarised by module. Partial loading is an explicit choice: ``--allow-partial``
(the tools), ``LOCAT_MM_ALLOW_PARTIAL=1`` or ``check_model_fit(..., allow_partial=True)``.

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
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

TRUST_ENV = 'LOCAT_MM_TRUST_CHECKPOINT'
ALLOW_PARTIAL_ENV = 'LOCAT_MM_ALLOW_PARTIAL'
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


class CheckpointFormatError(ValueError):
    """A file that is not a checkpoint torch can read: the message says what it is."""


class CheckpointMismatchError(KeyError):
    """A checkpoint that does not fit the model it is loaded into; the message names what."""

    def __str__(self) -> str:
        # KeyError would print the repr of its message, quotes and escaped newlines included.
        return str(self.args[0]) if self.args else ''


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


# Leading bytes of files people mistake for checkpoints, and what they are.
_MAGIC = (
    (b'\x89HDF', 'an HDF5 file (Keras or h5py weights?)'),
    (b'\x93NUMPY', 'a NumPy .npy array'),
    (b'\x1f\x8b', 'a gzip-compressed file (unpack it first)'),
    (b'BZh', 'a bzip2-compressed file (unpack it first)'),
    (b'\xfd7zXZ', 'an xz-compressed file (unpack it first)'),
    (b'\x89PNG', 'a PNG image'),
    (b'\xff\xd8\xff', 'a JPEG image'),
)
# Pickle opcodes for protocols 2 and later start with PROTO (0x80): torch's legacy format.
_PICKLE_PROTO = b'\x80'
_ZIP_LOCAL_HEADER = b'PK\x03\x04'


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:  # possibly a multi-byte character cut at the end
        text = head[:-4].decode('utf-8', errors='strict') if len(head) > 4 else ''
    return bool(text) and all(c.isprintable() or c in '\r\n\t' for c in text)


def _safetensors_header(head: bytes, size: int) -> bool:
    # safetensors: a little-endian u64 header length, then that many bytes of JSON.
    return len(head) > 8 and head[8:9] == b'{' and 8 < int.from_bytes(head[:8], 'little') < size


def identify_file(path: str) -> Optional[str]:
    """What a local file is, when it is not something ``torch.load`` can read.

    Returns:
        str | None: None for torch's zip format with an intact directory and for pickles
        (torch's legacy format); otherwise a description such as ``'a text file (it starts
        with ...)'``, ``'a truncated or damaged zip file'`` or ``'a safetensors file'``.
    """
    size = osp.getsize(path)
    if size == 0:
        return 'an empty file (an interrupted download or copy?)'
    with open(path, 'rb') as f:
        head = f.read(256)
    if head.startswith(_ZIP_LOCAL_HEADER):
        if not zipfile.is_zipfile(path):
            return (f'a truncated or damaged zip file ({size} bytes; torch checkpoints are zip '
                    'files): download or copy it again')
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if not any(name.endswith('data.pkl') for name in names):
            return f'a zip archive that torch did not write (no data.pkl; it holds {names[:3]})'
        return None
    if head.startswith(_PICKLE_PROTO):
        return None
    if _safetensors_header(head, size):
        return ('a safetensors file (convert it once with '
                '`torch.save(safetensors.torch.load_file(PATH), NEW_PATH)`)')
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if _looks_like_text(head):
        first = head.decode('utf-8', errors='replace').strip().splitlines()[0][:80]
        if first.startswith('version https://git-lfs'):
            return 'a Git LFS pointer, not the file it points to: fetch it with `git lfs pull`'
        return (f'a text file (it starts with {first!r}; a web page or error message saved '
                'in place of a download?)')
    return f'not a torch checkpoint (it starts with the bytes {head[:8]!r})'


def _check_format(path: str, source: str) -> None:
    """Raises :class:`CheckpointFormatError` when a local file is no torch checkpoint."""
    what = identify_file(path)
    if what is not None:
        raise CheckpointFormatError(f'{source!r} is not a checkpoint torch can read: it is {what}.')


def _is_safe_loader_refusal(err: Exception) -> bool:
    """True for the weights-only unpickler refusing the file's content (a global, an opcode),
    as opposed to a pickle that is cut short or damaged."""
    return 'weights only' in str(err).lower() or 'WeightsUnpickler' in str(err)


def _damaged(source: str, err: Exception) -> CheckpointFormatError:
    return CheckpointFormatError(
        f'{source!r} is a torch checkpoint that is truncated or damaged ({type(err).__name__}: '
        f'{str(err).splitlines()[0][:200] if str(err) else "it ends too early"}): download or '
        'copy it again.')


def _refusal(source: str, err: Exception) -> UntrustedCheckpointError:
    # torch wraps the unpickler's reason in paragraphs of advice; keep only the reason.
    reason = str(err).split('WeightsUnpickler error:')[-1].strip().split('\n')[0][:300]
    return UntrustedCheckpointError(
        f'Refusing to load {source!r}: it is a torch checkpoint that holds more than tensors '
        f'and loading it could run code from the file ({reason}). If you '
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
    except (UntrustedCheckpointError, CheckpointFormatError):
        raise
    except pickle.UnpicklingError as err:
        if _is_safe_loader_refusal(err):
            raise _refusal(source, err) from err
        raise _damaged(source, err) from err
    except EOFError as err:
        raise _damaged(source, err) from err
    except RuntimeError as err:
        if 'PytorchStreamReader' not in str(err):
            raise
        raise _damaged(source, err) from err
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
        CheckpointFormatError: The file is not a torch checkpoint, or a truncated one.
    """
    local = osp.expanduser(filename) if isinstance(filename, str) else filename
    if not isinstance(local, str) or osp.isfile(local) \
            or importlib.util.find_spec('mmengine') is None:
        if isinstance(local, str) and not osp.isfile(local):
            raise FileNotFoundError(f'checkpoint {filename!r} not found')
        if isinstance(local, str):
            _check_format(local, str(filename))
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
            if isinstance(filename, str) and osp.isfile(filename):
                _check_format(filename, filename)
            with loading_policy(filename):
                return _loader(filename, *args, **kwargs)

        guarded._locat_guarded = True
        CheckpointLoader.register_scheme(prefix, guarded, force=True)


# ----------------------------------------------------------------------------- model fit
def partial_loading_allowed() -> bool:
    """True when ``LOCAT_MM_ALLOW_PARTIAL`` lets checkpoints that do not fit load partially."""
    return os.environ.get(ALLOW_PARTIAL_ENV, '').strip().lower() in _TRUE


def allow_partial_loading() -> None:
    """What ``--allow-partial`` does: checkpoints that do not fit their model load what fits,
    with a warning, in this process and the processes it starts."""
    os.environ[ALLOW_PARTIAL_ENV] = '1'


Shape = Tuple[int, ...]


@dataclass
class ModelFit:
    """How a state dict fits a model, after the model's own load hooks adapted it.

    Attributes:
        missing (list[str]): Model keys the state dict lacks.
        unexpected (list[str]): State-dict keys the model has no place for.
        mismatched (dict[str, tuple[Shape, Shape]]): Keys of both, with the checkpoint's
            and the model's shape where they differ.
        matched (int): Keys that would be loaded.
    """
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: Dict[str, Tuple[Shape, Shape]] = field(default_factory=dict)
    matched: int = 0

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def model_fit(model: nn.Module, state_dict: Mapping[str, Any]) -> ModelFit:
    """Compares ``state_dict`` with ``model`` as ``model.load_state_dict`` would, loading nothing.

    The model's load pre-hooks run first (a backbone that converts another layout or resizes
    its position embedding does so here too); then each module's own entries are taken out
    of the state dict before the module would copy them, so no tensor is written.
    ``num_batches_tracked`` counters (BatchNorm makes one up when absent) are not counted.
    """
    expected: Dict[str, Dict[str, Shape]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        prefix, _, name = key.rpartition('.')
        expected.setdefault(prefix + '.' if prefix else '', {})[name] = tuple(value.shape)
    fit = ModelFit()

    def take_own(module, state, prefix, *args) -> None:
        own = expected.get(prefix, {})
        for name, shape in own.items():
            value = state.pop(prefix + name, None)
            if name == 'num_batches_tracked':
                continue  # BatchNorm supplies it when absent
            if value is None:
                fit.missing.append(prefix + name)
            elif tuple(value.shape) != shape:
                fit.mismatched[prefix + name] = (tuple(value.shape), shape)
            else:
                fit.matched += 1
        children = dict(module.named_children())
        for key in [k for k in state if k.startswith(prefix)]:
            head, dot, _ = key[len(prefix):].partition('.')
            if not dot or head not in children:
                del state[key]
                fit.unexpected.append(key)

    handles = [m.register_load_state_dict_pre_hook(take_own) for m in model.modules()]
    try:
        model.load_state_dict(state_dict, strict=False)
    finally:
        for handle in handles:
            handle.remove()
    fit.missing.sort()
    fit.unexpected.sort()
    return fit


def summarise_keys(keys: Iterable[str], limit: int = 8) -> str:
    """Keys grouped by module, numbered modules folded: ``'backbone.layers.{0-11} (144 keys),
    decode_head.conv_seg (2 keys)'``; at most ``limit`` groups, then how many more."""
    groups: Dict[str, Tuple[int, set]] = {}
    for key in keys:
        parts = key.split('.')
        module, taken = [], 0
        for part in parts[:-1] if len(parts) > 1 else parts:
            if part.isdigit():
                if not module:
                    break
                module.append(part)
                continue
            if taken == 2:
                break
            module.append(part)
            taken += 1
        pattern = '.'.join('*' if p.isdigit() else p for p in module)
        indices = {int(p) for p in module if p.isdigit()}
        count, seen = groups.get(pattern, (0, set()))
        groups[pattern] = (count + 1, seen | indices)
    shown = []
    for pattern, (count, indices) in list(groups.items())[:limit]:
        if indices:
            span = (f'{{{min(indices)}-{max(indices)}}}' if len(indices) > 1 else
                    str(min(indices)))
            pattern = pattern.replace('*', span, 1)
        shown.append(f'{pattern} ({count} key{"s" if count > 1 else ""})')
    more = len(groups) - limit
    return ', '.join(shown) + (f' and {more} more modules' if more > 0 else '')


def describe_shapes(mismatched: Mapping[str, Tuple[Shape, Shape]], examples: int = 3) -> str:
    """Keys of other shapes, by module, with the first ``examples`` shapes spelled out."""
    shown = '; '.join(f'{key}: {tuple(ckpt)} in the checkpoint, {tuple(own)} in the model'
                      for key, (ckpt, own) in list(mismatched.items())[:examples])
    return f'Of other shapes: {summarise_keys(mismatched)} (e.g. {shown}).'


def shape_mismatches(model_state: Mapping[str, Any],
                     ckpt_state: Mapping[str, Any]) -> Dict[str, Tuple[Shape, Shape]]:
    """Keys of both state dicts whose shapes differ: key -> (checkpoint's, model's)."""
    return {key: (tuple(ckpt_state[key].shape), tuple(value.shape))
            for key, value in model_state.items()
            if key in ckpt_state and tuple(ckpt_state[key].shape) != tuple(value.shape)}


def describe_fit(fit: ModelFit, examples: int = 3) -> str:
    """The parts of a :class:`ModelFit` that do not fit, in words, by module."""
    lines = []
    if fit.missing:
        lines.append(f'Missing from the checkpoint: {summarise_keys(fit.missing)}.')
    if fit.unexpected:
        lines.append(f'In the checkpoint but not in the model: {summarise_keys(fit.unexpected)}.')
    if fit.mismatched:
        lines.append(describe_shapes(fit.mismatched, examples))
    lines.append(f'{fit.matched} keys fit.')
    return ' '.join(lines)


def state_dict_of(checkpoint: Mapping[str, Any],
                  revise_keys: Iterable[Tuple[str, str]] = ((r'^module\.', ''), )) -> dict:
    """The state dict mmengine loads from a checkpoint object: ``state_dict`` when present,
    keys revised as ``load_checkpoint``'s ``revise_keys`` (by default ``module.`` stripped).
    Its ``_metadata`` is kept, as mmengine keeps it: the modules' load hooks read it (e.g. a hub
    release's architecture, which a backbone checks before anything else)."""
    state = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state, '_metadata', None)
    for pattern, repl in revise_keys:
        state = OrderedDict((re.sub(pattern, repl, key), value) for key, value in state.items())
    if metadata is not None:
        state._metadata = metadata
    return state


def check_model_fit(model: nn.Module,
                    state_dict: Mapping[str, Any],
                    source: str,
                    allow_partial: Optional[bool] = None,
                    describe: Optional[Callable[[Mapping[str, Any]], str]] = None,
                    what_to_do: str = '') -> ModelFit:
    """Raises :class:`CheckpointMismatchError` unless ``state_dict`` fits ``model`` exactly.

    Args:
        model (nn.Module): The model (unwrapped) the state dict is for.
        state_dict (Mapping): Its tensors, keys as ``model.load_state_dict`` takes them.
        source (str): Where the state dict comes from, for the message.
        allow_partial (bool, optional): Only warn (loading what fits is then the caller's
            business). Default: :func:`partial_loading_allowed`.
        describe (callable, optional): Says in words what a state dict is (used for both the
            checkpoint and the model, e.g. ``'a LocAtViT of width 192, depth 12'``).
        what_to_do (str): Advice added to the message before the way to opt out.

    Returns:
        ModelFit: The comparison (when it fits, or partial loading is allowed).
    """
    fit = model_fit(model, state_dict)
    if fit.fits:
        return fit
    found = f' ({describe(state_dict)})' if describe else ''
    wanted = f' ({describe(model.state_dict())})' if describe else ''
    message = (f'Checkpoint {source!r}{found} does not fit the model{wanted}. '
               f'{describe_fit(fit)} {what_to_do}'.rstrip())
    allow_partial = partial_loading_allowed() if allow_partial is None else allow_partial
    if allow_partial:
        logger.warning('%s Loading what fits, as partial loading is allowed (%s).', message,
                       ALLOW_PARTIAL_ENV)
        return fit
    raise CheckpointMismatchError(
        f'{message} To load only what fits, pass --allow-partial (tools/train.py, '
        f'tools/test.py) or set {ALLOW_PARTIAL_ENV}=1.')


def describe_locat_contents(state_dict: Mapping[str, Any]) -> str:
    """:func:`locat_mm.models.ckpt_describe.describe_contents`, imported when first needed."""
    from .models.ckpt_describe import describe_contents
    return describe_contents(state_dict)


def holds_locat_modules(model: nn.Module) -> bool:
    """True for a model with a module of this project (e.g. a LocAtViT backbone)."""
    return any(type(m).__module__.startswith('locat_mm.') for m in model.modules())


def guard_model_loading() -> None:
    """Makes mmengine's ``load_checkpoint(model, filename, ...)`` check the fit first.

    That function loads leniently (``strict=False``) and only logs what does not fit; it is
    what ``mmpretrain.get_model(name, pretrained=PATH)`` and mmseg's ``init_model`` call. For
    models holding this project's modules, a checkpoint that does not fit is refused with
    :class:`CheckpointMismatchError` (:func:`check_model_fit`) unless partial loading is
    allowed (``LOCAT_MM_ALLOW_PARTIAL=1``); other models load as before. Safe to call twice.
    """
    import mmengine.runner
    from mmengine.model import is_model_wrapper
    from mmengine.runner import checkpoint as module
    if getattr(module.load_checkpoint, '_locat_fit_checked', False):
        return

    @functools.wraps(module.load_checkpoint)
    def load_checkpoint(model, filename, map_location=None, strict=False, logger=None,
                        revise_keys=[(r'^module\.', '')]):
        checkpoint = module._load_checkpoint(filename, map_location, logger)
        if not isinstance(checkpoint, dict):
            raise RuntimeError(f'No state_dict found in checkpoint file {filename}')
        if holds_locat_modules(model):
            bare = model.module if is_model_wrapper(model) else model
            check_model_fit(bare, state_dict_of(checkpoint, revise_keys), filename,
                            allow_partial=False if strict else None,
                            describe=describe_locat_contents)
        return module._load_checkpoint_to_model(model, checkpoint, strict, logger, revise_keys)

    load_checkpoint._locat_fit_checked = True
    module.load_checkpoint = mmengine.runner.load_checkpoint = load_checkpoint
