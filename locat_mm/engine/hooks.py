"""Training hooks of LocAtViT, and the probe that reads its attention inputs."""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import Tensor

from ..layers import LocAtAttention

# callback(layer_index, attention_module, q, k, grid, num_prefix); q, k: (B, heads, P + N, c).
ProbeCallback = Callable[[int, LocAtAttention, Tensor, Tensor, Tuple[int, int], int], None]


def attention_layers(model: nn.Module) -> List[LocAtAttention]:
    """The ``LocAtAttention`` modules of a model (DDP-style wrappers unwrapped), in order."""
    if is_model_wrapper(model):
        model = model.module
    return [m for m in model.modules() if isinstance(m, LocAtAttention)]


class AttentionProbe:
    """Hands every LocAtViT attention layer's per-head queries and keys to a callback.

    Registers, while active, a forward pre-hook on each ``LocAtAttention`` (its grid and
    prefix-token count) and a forward hook on its ``qkv`` projection (the queries and keys the
    layer attends with), so nothing is recomputed and the model code is untouched. Use as a
    context manager, or call :meth:`attach` / :meth:`detach`.

    Args:
        layers (Sequence[LocAtAttention]): Layers to probe; the callback gets their index in
            this sequence.
        callback (ProbeCallback): Called inside each layer's forward, under the model's
            autocast, with ``q, k`` of shape (B, heads, P + N, c) (detached).
    """

    def __init__(self, layers: Sequence[LocAtAttention], callback: ProbeCallback) -> None:
        self.layers = list(layers)
        self.callback = callback
        self._handles: list = []
        self._inputs: Dict[int, Tuple[Tuple[int, int], int]] = {}

    def attach(self) -> 'AttentionProbe':
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_pre_hook(self._pre_hook(index)))
            self._handles.append(layer.qkv.register_forward_hook(self._qkv_hook(index, layer)))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._inputs.clear()

    def __enter__(self) -> 'AttentionProbe':
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _pre_hook(self, index: int):

        def hook(module: nn.Module, args: tuple) -> None:
            # LocAtAttention.forward(x, grid, num_prefix)
            self._inputs[index] = (tuple(args[1]), int(args[2]))

        return hook

    def _qkv_hook(self, index: int, layer: LocAtAttention):

        def hook(module: nn.Module, args: tuple, qkv: Tensor) -> None:
            grid, num_prefix = self._inputs.pop(index)
            B, L, _ = qkv.shape
            # The head split of LocAtAttention.forward: (B, L, 3, heads, c) -> q, k.
            qkv = qkv.detach().reshape(B, L, 3, layer.num_heads, layer.head_dims)
            q, k = qkv.permute(2, 0, 3, 1, 4)[:2]
            with torch.no_grad():
                self.callback(index, layer, q, k, grid, num_prefix)

        return hook


@HOOKS.register_module()
class GAugStatsHook(Hook):
    """Logs, every ``interval`` training iterations, each layer's GAug variance and amplitude.

    For every block: the mean variance along rows (``gaug/l{i}_var_row``) and columns
    (``gaug/l{i}_var_col``) and the mean amplitude (``gaug/l{i}_amp``), averaged over the
    batch, heads and patch queries of that iteration. They go to the message hub as
    ``train/`` scalars, so the LoggerHook writes them to the log file, the json scalars and
    every visualizer backend (TensorBoard included) at its next logging iteration; give both
    hooks the same interval to log every value.

    Cost: forward hooks exist only during logging iterations; the statistics are reduced on
    the device and copied to the host once per logging iteration (no per-step sync).
    Models without GAug (plain ViT) get a single warning and no statistics.

    Args:
        interval (int): Iterations between two measurements.
    """
    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL) in after_train_iter

    def __init__(self, interval: int = 50) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval
        self._probe: Optional[AttentionProbe] = None
        self._stats: Dict[int, Tensor] = {}
        self._warned = False

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        layers = [m for m in attention_layers(runner.model) if m.gaug is not None]
        if not layers:
            if not self._warned:
                runner.logger.warning('GAugStatsHook: the model has no GAug layers; '
                                      'no GAug statistics will be logged.')
                self._warned = True
            return
        self._stats.clear()
        self._probe = AttentionProbe(layers, self._record).attach()

    def _record(self, index: int, layer: LocAtAttention, q: Tensor, k: Tensor,
                grid: Tuple[int, int], num_prefix: int) -> None:
        """Stores (var_row, var_col, amp) of one layer, means over batch, heads and queries."""
        var, amp = layer.gaug.variance_amplitude(q[:, :, num_prefix:], grid)
        self._stats[index] = torch.cat([var.mean(dim=(0, 1, 2)), amp.mean().reshape(1)])

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._probe is None:
            return
        self._probe.detach()
        self._probe = None
        if not self._stats:
            return
        indices = sorted(self._stats)
        values = torch.stack([self._stats[i] for i in indices]).tolist()  # the one host copy
        self._stats.clear()
        for index, (var_row, var_col, amp) in zip(indices, values):
            runner.message_hub.update_scalar(f'train/gaug/l{index}_var_row', var_row)
            runner.message_hub.update_scalar(f'train/gaug/l{index}_var_col', var_col)
            runner.message_hub.update_scalar(f'train/gaug/l{index}_amp', amp)
