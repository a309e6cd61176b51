# The paper in miniature, stage 1: image-level pretraining of a small LocAtViT on the synthetic
# shape-classification set (tools/mini_paper.py). The in1k recipe (locat_vit_t_in1k.py) scaled
# down to 800 iterations of 32 images on CPU; see the README's "Reproducing the claim in
# miniature" for why each setting differs from the full recipe.
_base_ = [
    '../_base_/models/locat_vit_cls.py',
    '../_base_/datasets/synthetic_shapes_cls.py',
    '../_base_/locat_cls_runtime.py',
]
embed_dims = 128
max_iters = 800
warmup_iters = 80
model = dict(
    backbone=dict(
        # _delete_: the base's arch is a name; this one is a dict.
        arch=dict(_delete_=True, embed_dims=embed_dims, num_layers=4, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size={{_base_.img_size}},
        patch_size=8,
        out_type='cls_token',
        final_norm=True,
        gaug=True,
        prr=True,
        drop_path_rate=0.0),
    head=dict(num_classes=6, in_channels=embed_dims),
    # Mixup and CutMix off: at ~6 epochs they keep a model this small near chance.
    train_cfg=dict(_delete_=True))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=5.0))
# Linear warm-up, then linear decay, per iteration (the in1k recipe's shape); `end` on both so
# a checkpoint's scheduler never outlives a changed max_iters.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=1e-2, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()

log_interval = 100
default_hooks = dict(
    logger=dict(interval=log_interval, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1, save_best=None))
custom_hooks = [dict(type='GAugStatsHook', interval=log_interval), dict(type='RNGStateHook')]
# Plain json logs: nothing here needs TensorBoard.
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
randomness = dict(seed=0)
