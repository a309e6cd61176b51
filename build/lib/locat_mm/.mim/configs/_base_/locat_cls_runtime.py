# Runtime of the classification configs: mmpretrain's defaults, this project's plugin, the
# GAug statistics hook, the RNG-state hook (exact resume) and TensorBoard next to the local
# (json) log.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['locat_mm'], allow_failed_imports=False)

log_interval = 100
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=log_interval),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
# Same interval as the logger, so every value the hook computes is written (models without
# GAug, the ViT baselines, make it a no-op).
# RNGStateHook puts the random generators' states in checkpoints, so a resumed run (dropout,
# drop path, augmentation on) repeats the uninterrupted one.
custom_hooks = [dict(type='GAugStatsHook', interval=log_interval), dict(type='RNGStateHook')]

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
