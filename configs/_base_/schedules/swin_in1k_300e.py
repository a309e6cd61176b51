# Swin's ImageNet-1k recipe (Swin paper, timm and mmpretrain's swin schedule alike): AdamW,
# lr 1e-3 at a total batch of 1024, weight decay 0.05 (none on norms, biases and the
# relative-position tables), 300 epochs, per-iteration linear warm-up from 1e-6 over 20
# epochs, then cosine decay to 1e-5; gradient-norm clip 5; mixed precision. Inherits the
# project's ImageNet schedule for everything else (optimizer wrapper, clip, auto_scale_lr).
_base_ = './locat_in1k_300e.py'

warmup_epochs = 20
max_epochs = 300
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.relative_position_bias_table': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
