# The LocAtViT/DeiT recipe: AdamW, lr 1e-3 at a total batch of 1024 (5e-4 per 512), weight
# decay 0.05, 300 epochs; per-iteration linear warm-up from 1e-7 over 20 epochs, then linear
# decay to 1e-7; gradient-norm clip 5; mixed precision.
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py'

base_lr = 1e-3
# Warm-up start and final lr as fractions of base_lr: 1e-7 at base_lr 1e-3 (auto_scale_lr
# scales both with the batch size).
min_lr_factor = 1e-4
warmup_epochs = 20
max_epochs = 300

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    # As timm: no decay on 1-D parameters (norms, biases) and the embeddings' tokens.
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=5.0),
)

# LinearLR reaches end_factor at its last step (end - 1), so lr is base_lr at the first
# post-warm-up iteration and base_lr * min_lr_factor at the last iteration of training.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=min_lr_factor,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=min_lr_factor,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)
