"""What ``tools/train.py`` and ``tools/test.py`` do to a config, for MMSegmentation and MMPretrain.

The two toolboxes' own launchers differ in a few defaults; ours pick the toolbox from the
config's ``default_scope`` and keep each one's behaviour, plus what this project needs:
multi-process training on machines without CUDA (gloo, no device ids, BN for SyncBN) and
input checks before anything is written.
"""
import argparse
import logging
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint import allow_partial_loading, load_checkpoint, trust_checkpoints

TOOLBOXES = ('mmseg', 'mmpretrain')
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def parse_common_args(parser: argparse.ArgumentParser,
                      argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Adds the options both launchers share (``--cfg-options``, ``--launcher``,
    ``--local_rank``, ``--trust-checkpoint``, ``--allow-partial``) to ``parser``, parses
    ``argv`` and exports ``LOCAL_RANK`` (and the trust and partial-loading switches)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (lists as key="[a,b]"), no spaces')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='load checkpoints that need more than the safe loader allows (their pickle may run '
        'code): only for files from a source you trust')
    parser.add_argument(
        '--allow-partial', action='store_true',
        help='load a checkpoint that does not fit the model (missing, unexpected or '
        'other-shaped keys) partially, with a warning, instead of stopping')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.trust_checkpoint:
        trust_checkpoints()
    if args.allow_partial:
        allow_partial_loading()
    return args


def load_config(path: str, cfg_options: Optional[dict], work_dir: Optional[str],
                launcher: str) -> Config:
    """Reads a config, applies ``--cfg-options``, the launcher and the work dir.

    The work dir is, by priority, ``work_dir``, the config's ``work_dir``, then
    ``work_dirs/<config name>`` (as upstream).
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def toolbox(cfg: Config) -> str:
    """The config's toolbox, from ``default_scope`` (``'mmseg'`` or ``'mmpretrain'``)."""
    scope = cfg.get('default_scope')
    if scope not in TOOLBOXES:
        raise ValueError(f'default_scope is {scope!r}; these tools run configs of '
                         f'{" or ".join(TOOLBOXES)}: set default_scope in the config.')
    return scope


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume``: ``'auto'`` resumes from the work dir's latest checkpoint, a path from it.

    ``'auto'`` also clears ``load_from``, which would otherwise be resumed from instead.
    """
    if resume is None:
        return
    cfg.resume = True
    cfg.load_from = None if resume == 'auto' else resume


def enable_amp(cfg: Config) -> None:
    """``--amp``: mixed-precision training through mmengine's ``AmpOptimWrapper``."""
    if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in the config.', logger='current',
                  level=logging.WARNING)
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def configure_dataloaders(cfg: Config, fields: Sequence[str], mmpretrain_defaults: bool,
                          pin_memory: bool = True, persistent_workers: bool = True) -> None:
    """Dataloader options of the launchers, where the config does not set them.

    With ``mmpretrain_defaults``, MMPretrain's launcher defaults (``default_collate``, pinned
    memory, persistent workers); MMSegmentation's launcher sets none (its Runner default,
    ``pseudo_collate``, must stay). ``pin_memory=False``/``persistent_workers=False``
    (``--no-pin-memory``/``--no-persistent-workers``) turn them off. Unlike upstream,
    ``persistent_workers`` is always off for ``num_workers=0``, where PyTorch's DataLoader
    refuses it, and ``pin_memory`` defaults on only with CUDA, the only place it helps.
    """
    for field in fields:
        if not cfg.get(field):
            continue
        loader = cfg[field]
        if mmpretrain_defaults:
            loader.setdefault('collate_fn', dict(type='default_collate'))
            loader.setdefault('pin_memory', torch.cuda.is_available())
            loader.setdefault('persistent_workers', True)
        if not pin_memory:
            loader.pin_memory = False
        has_workers = loader.get('num_workers', 0) > 0
        if 'persistent_workers' in loader:
            loader.persistent_workers = bool(loader.persistent_workers and persistent_workers
                                             and has_workers)


def _sync_bn_to_bn(node) -> None:
    """Replaces ``SyncBN`` norm configs by ``BN`` everywhere in a (nested) model config."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value)


def adapt_for_cpu_distributed(cfg: Config) -> bool:
    """Makes a multi-process config run on CPU processes; a no-op when CUDA is available.

    PyTorch's DDP on CPU needs the gloo backend, no ``device_ids`` (mmengine passes the local
    rank otherwise) and no SyncBN (GPU only). ``locat_mm.compat`` also stops mmengine from
    calling ``torch.cuda.set_device``.

    Returns:
        bool: Whether the config was changed.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return False
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.device_ids = None
    cfg.model_wrapper_cfg = wrapper
    _sync_bn_to_bn(cfg.model)
    # mmengine's `sync_bn` option converts BN back to SyncBN after building.
    cfg.pop('sync_bn', None)
    print_log('No CUDA: distributed on CPU processes (gloo backend, BN instead of SyncBN).',
              logger='current')
    return True


def run_length_options(iters: int, warmup: int) -> dict:
    """``--cfg-options`` that make a run ``iters`` iterations long, validated and checkpointed at
    its end, for configs whose ``param_scheduler`` is a warm-up (0) followed by a decay (1)
    ending at ``max_iters``; the warm-up ends after ``warmup`` iterations."""
    return {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters,
        'param_scheduler.0.end': warmup,
        'param_scheduler.1.begin': warmup,
        'param_scheduler.1.end': iters,
    }


def wrap_loading_transforms(dataset: dict) -> None:
    """Wraps the ``Load*`` transforms of a dataset config (and of the datasets it wraps) in
    :class:`~locat_mm.engine.NameFileOnError`, so that their errors name the file."""
    for inner in [dataset.get('dataset')] + list(dataset.get('datasets') or []):
        if isinstance(inner, dict):
            wrap_loading_transforms(inner)
    pipeline = dataset.get('pipeline')
    if not pipeline:
        return
    dataset['pipeline'] = [
        dict(type='NameFileOnError', transform=t) if isinstance(t, dict) and
        str(t.get('type', '')).split('.')[-1].startswith('Load') else t for t in pipeline]


def name_files_in_load_errors(runner: Runner) -> None:
    """Makes an error of the Runner's loading transforms name the file (a truncated image
    outside the start-up checks' sample): :func:`wrap_loading_transforms` on its dataloaders.

    The Runner keeps its dataloaders' configs in ``_{train,val,test}_dataloader`` until it
    builds them; they are wrapped there, after the Runner dumped its config to the work dir,
    so the dump keeps the plain transforms that inferencers look for by name
    (``LoadImageFromFile``).
    """
    for field in DATALOADERS:
        loader = getattr(runner, f'_{field}', None)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'), dict):
            wrap_loading_transforms(loader['dataset'])


def check_checkpoint_fit(cfg: Config) -> None:
    """Adds :class:`~locat_mm.engine.CheckpointFitHook` to ``custom_hooks`` (once): the
    Runner then refuses a ``load_from``/resume checkpoint that does not fit the model, unless
    partial loading is allowed (``--allow-partial``)."""
    hooks = cfg.get('custom_hooks') or []
    if not any(hook.get('type') == 'CheckpointFitHook' for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type='CheckpointFitHook')]


def build_runner(cfg: Config) -> Runner:
    """The Runner of a config: ``runner_type`` from the registry if set, else mmengine's.

    First, before the Runner writes anything: the backbone's ``in_channels`` must match the
    data preprocessor's channels, and a checkpoint it loads (``load_from``, resume) must fit the
    model (:func:`check_checkpoint_fit`). A data file that cannot be loaded is then named
    (:func:`name_files_in_load_errors`).
    """
    from locat_mm.models.backbones.interface import check_input_channels
    check_input_channels(cfg.get('model') or {}, cfg.get('data_preprocessor'))
    check_checkpoint_fit(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    name_files_in_load_errors(runner)
    return runner


def classifier_checkpoint(path: str, work_dir: str) -> str:
    """The checkpoint to test an MMPretrain config with.

    An authors' checkpoint (timm layout) is converted once into ``work_dir`` (see
    ``tools/model_converters/locat_timm2mm.py``); any other checkpoint is used as it is.
    The layout is read from the keys of a memory-mapped load, so the tensors are read once,
    by the Runner (or the converter).
    """
    from locat_mm.models.ckpt_convert import (convert_timm_classifier_file, is_timm_layout,
                                              unwrap_state_dict)
    if not osp.isfile(path):
        return path  # a URL, or missing: the Runner's loader reports it
    if not is_timm_layout(unwrap_state_dict(load_checkpoint(path, mmap=True))):
        return path
    converted = osp.join(work_dir, 'converted_' + osp.basename(path))
    convert_timm_classifier_file(path, converted)
    print_log(f'{path} is in the authors\' (timm) layout: converted to {converted}',
              logger='current')
    return converted
