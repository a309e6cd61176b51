"""Exact resume with randomness on: the random number generators' states go into checkpoints.

Dropout, drop path and data augmentation draw from torch's (CPU and CUDA), numpy's and
Python's global generators. mmengine saves none of their states, so a run resumed from a
checkpoint draws other numbers than the uninterrupted run would have, and ends with other
weights. :class:`RNGStateHook` stores each rank's states in the checkpoint and restores them
on resume, at the point where the uninterrupted run drew next.
"""
import logging
import random
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

CHECKPOINT_KEY = 'rng_states'
RNGState = Dict[str, object]


def capture_rng_state() -> RNGState:
    """This process's generator states, as objects ``torch.load(weights_only=True)`` reads.

    Returns:
        dict: ``torch`` (uint8 tensor), ``cuda`` (uint8 tensor of the current device, or
        None), ``numpy`` (MT19937 state with its key as an int64 tensor), ``python``
        (``random.getstate()``: tuples of ints).
    """
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        numpy=(kind, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss),
               float(cached)),
        python=random.getstate())


def restore_rng_state(state: RNGState) -> None:
    """Sets this process's generators to a state from :func:`capture_rng_state`."""
    torch.set_rng_state(state['torch'])
    if state['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])
    kind, key, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state['python'])


class _RestoreBeforeFetch:
    """Wraps an iteration loop's data iterator: restores RNG states after ``skip`` batches.

    mmengine's ``IterBasedTrainLoop`` replays the batches trained before the checkpoint to
    reach the resumed position; with ``num_workers=0`` the replay draws from the main
    process's generators, so the states are set when it is done, before the first new batch.
    """

    def __init__(self, loop, skip: int, state: RNGState) -> None:
        self.loop, self.inner, self.skip, self.state = loop, loop.dataloader_iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            restore_rng_state(self.state)
            self.loop.dataloader_iterator = self.inner
        else:
            self.skip -= 1
        return next(self.inner)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves every rank's RNG states in checkpoints and restores them when resuming.

    With it, a run killed after a checkpoint and resumed (``--resume``) ends with the same
    weights as an uninterrupted one, dropout and drop path on (given deterministic kernels:
    ``randomness=dict(seed=..., deterministic=True)`` on GPUs). Validation during training
    leaves the training stream untouched (its draws are undone), so where validation falls
    does not matter either.

    Resuming with another number of ranks than the checkpoint was saved with restores nothing
    and warns: that run cannot repeat the original one.
    """

    priority = 'LOW'  # after_train_* before CheckpointHook (VERY_LOW) saves

    def __init__(self) -> None:
        self._gathered: Optional[List[RNGState]] = None
        self._gathered_at: Optional[int] = None
        self._before_val: Optional[List[RNGState]] = None
        self._pending: Optional[RNGState] = None

    # ------------------------------------------------------------------ saving
    @staticmethod
    def _gather() -> List[RNGState]:
        """Every rank's states, in rank order (a collective when distributed)."""
        state = capture_rng_state()
        return all_gather_object(state) if get_world_size() > 1 else [state]

    @staticmethod
    def _checkpoint_hooks(runner, by_epoch: bool) -> List[CheckpointHook]:
        return [
            h for h in runner.hooks if isinstance(h, CheckpointHook) and h.by_epoch == by_epoch
        ]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # Collective: only when a CheckpointHook saves after this iteration (its own test).
        if get_world_size() > 1 and any(
                h.every_n_train_iters(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_iter(runner))
                for h in self._checkpoint_hooks(runner, by_epoch=False)):
            self._gathered, self._gathered_at = self._gather(), runner.iter + 1

    def after_train_epoch(self, runner) -> None:
        if get_world_size() > 1 and any(
                h.every_n_epochs(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_epoch(runner))
                for h in self._checkpoint_hooks(runner, by_epoch=True)):
            self._gathered, self._gathered_at = self._gather(), runner.iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Rank 0 only (mmengine saves there): writes the states of all ranks."""
        if self._before_val is not None:  # a best checkpoint saved during validation
            states = self._before_val
        elif get_world_size() == 1:
            states = [capture_rng_state()]
        elif self._gathered_at == checkpoint['meta']['iter']:
            states = self._gathered
        else:
            print_log('RNGStateHook: the other ranks\' RNG states are not known at this save; '
                      'a resume from it will not repeat the run exactly.', logger='current',
                      level=logging.WARNING)
            return
        checkpoint[CHECKPOINT_KEY] = states

    # ------------------------------------------------------------------ validation
    def before_val(self, runner) -> None:
        self._before_val = self._gather()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val[get_rank()])
            self._before_val = None

    # ------------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(CHECKPOINT_KEY)
        if states is None:
            return  # loaded weights (load_from) or a checkpoint from before this hook
        if len(states) != get_world_size():
            print_log(f'RNGStateHook: the checkpoint holds RNG states of {len(states)} ranks, '
                      f'this run has {get_world_size()}: they are not restored, so it will not '
                      'repeat the original run exactly.', logger='current', level=logging.WARNING)
            return
        self._pending = states[get_rank()]

    def before_train(self, runner) -> None:
        """Restores the loaded states where the uninterrupted run drew next."""
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        loop = runner.train_loop
        skip = getattr(loop, '_iter', 0) if hasattr(loop, 'dataloader_iterator') else 0
        if skip > 0:
            loop.dataloader_iterator = _RestoreBeforeFetch(loop, skip, state)
        else:
            restore_rng_state(state)
