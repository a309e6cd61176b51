# The paper's linear-probe schedule: 20k iterations, AdamW 1e-3, and a one-cycle lr: linear
# warm-up from lr/1e4 over the first 25 % (5k iterations), then linear anneal to lr/1e8.
_base_ = ['mmseg::_base_/schedules/schedule_20k.py', 'mmseg::_base_/default_runtime.py']
max_iters = 20000
warmup_iters = 5000
optimizer = dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=optimizer)
# `end` is set on every scheduler: a default one is stored in checkpoints and would stick
# when resuming with a larger max_iters.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        end_factor=1.0,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=1e-8,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
