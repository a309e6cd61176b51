"""GAugStatsHook: what it logs, when, and on which models (the log file: test_cls_e2e.py)."""
import math
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import HOOKS

from test_cls_configs import tiny_classifier_cfg

import locat_mm  # noqa: F401
from locat_mm.engine.hooks import GAugStatsHook


def build_tiny(name: str = 'locat_vit_t_in1k'):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = tiny_classifier_cfg(name, num_classes=5)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def fake_runner(model, iteration: int, name: str):
    return SimpleNamespace(model=model, iter=iteration, logger=MMLogger.get_instance(name),
                           message_hub=MessageHub.get_instance(name))


def direct_stats(model, inputs):
    """Per layer (var_row, var_col, amp) means, re-derived (SPEC section 1) from the queries
    of the model's own forward pass: the qkv projection's output and the layer's grid."""
    captured = []
    handles = []
    for block in model.backbone.layers:
        attn = block.attn
        handles.append(attn.register_forward_pre_hook(
            lambda mod, args: captured.append({'grid': args[1], 'prefix': args[2]})))
        handles.append(attn.qkv.register_forward_hook(
            lambda mod, args, out, attn=attn: captured[-1].update(attn=attn, qkv=out)))
    with torch.no_grad():
        model(inputs, mode='tensor')
    for handle in handles:
        handle.remove()
    stats = []
    for entry in captured:
        attn, (H, W), prefix = entry['attn'], entry['grid'], entry['prefix']
        B, L, _ = entry['qkv'].shape
        q = entry['qkv'].reshape(B, L, 3, attn.num_heads, -1)[:, prefix:, 0].double()
        gaug = attn.gaug
        s = q @ gaug.log_var.weight.double().T + gaug.log_var.bias.double()
        t = q @ gaug.log_alpha.weight.double().T + gaug.log_alpha.bias.double()
        H0, W0 = gaug.base_grid
        K = max(H0, W0)**2
        var = K * torch.sigmoid(s - math.log(K - 1)) * min(H, W) / min(H0, W0)
        amp = torch.nn.functional.softplus(t)
        stats.append((var[..., 0].mean().item(), var[..., 1].mean().item(), amp.mean().item()))
    return stats


def test_registered_in_root_registry():
    assert HOOKS.get('GAugStatsHook') is GAugStatsHook
    from mmpretrain.registry import HOOKS as PRETRAIN_HOOKS
    from mmseg.registry import HOOKS as SEG_HOOKS
    assert PRETRAIN_HOOKS.get('GAugStatsHook') is GAugStatsHook
    assert SEG_HOOKS.get('GAugStatsHook') is GAugStatsHook


def run_iteration(hook, runner, inputs):
    hook.before_train_iter(runner, 0)
    with torch.no_grad():
        runner.model(inputs, mode='tensor')
    hook.after_train_iter(runner, 0)


def test_stats_match_direct_computation():
    model = build_tiny().eval()
    inputs = torch.randn(3, 3, 32, 32)
    hook = GAugStatsHook(interval=2)
    runner = fake_runner(model, iteration=1, name='gaug_hook_direct')  # (1 + 1) % 2 == 0
    run_iteration(hook, runner, inputs)
    scalars = runner.message_hub.log_scalars
    want = direct_stats(model, inputs)
    assert len(want) == len(model.backbone.layers) >= 2
    assert sum(name.startswith('train/gaug/') for name in scalars) == 3 * len(want)
    for i, (var_row, var_col, amp) in enumerate(want):
        assert scalars[f'train/gaug/l{i}_var_row'].current() == pytest.approx(var_row, rel=1e-5)
        assert scalars[f'train/gaug/l{i}_var_col'].current() == pytest.approx(var_col, rel=1e-5)
        assert scalars[f'train/gaug/l{i}_amp'].current() == pytest.approx(amp, rel=1e-5)
    # Hooks exist only during the logging iteration.
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())

    runner = fake_runner(model, iteration=2, name='gaug_hook_skip')
    hook.before_train_iter(runner, 0)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    hook.after_train_iter(runner, 0)
    assert not runner.message_hub.log_scalars


def test_model_without_gaug_warns_once():
    model = build_tiny('vit_t_in1k')
    hook = GAugStatsHook(interval=1)
    runner = fake_runner(model, iteration=0, name='gaug_hook_vit')
    warnings = []
    runner.logger = SimpleNamespace(warning=warnings.append)
    for _ in range(3):
        run_iteration(hook, runner, torch.randn(1, 3, 32, 32))
    assert len(warnings) == 1 and 'no GAug layers' in warnings[0]
    assert not runner.message_hub.log_scalars


def test_ddp_wrapped_model():
    from mmengine.model import MMDistributedDataParallel
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0,
                            world_size=1)
    try:
        model = build_tiny()
        wrapped = MMDistributedDataParallel(module=model, device_ids=None)
        hook = GAugStatsHook(interval=1)
        runner = fake_runner(wrapped, iteration=0, name='gaug_hook_ddp')
        run_iteration(hook, runner, torch.randn(2, 3, 32, 32))
        assert 'train/gaug/l1_amp' in runner.message_hub.log_scalars
    finally:
        dist.destroy_process_group()
