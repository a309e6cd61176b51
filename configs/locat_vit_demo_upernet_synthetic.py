# Demo, stage 2 (tools/demo.py): LocAtViT + UperNet fine-tuned on the synthetic shapes
# segmentation set on CPU. The backbone is the one stage 1 (locat_vit_demo_cls_synthetic.py)
# pretrains with MMPretrain; tools/demo.py loads it here through
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...). Left as it is (init_cfg
# None) the config trains from scratch, which needs a far longer schedule on this data.
# The model is the paper's UperNet protocol (_base_/models/locat_vit_upernet.py) shrunk to the
# mini paper's arch: 4 blocks of width 128 with 4 heads, patch 8 at 64 px (an 8 x 8 grid), BN
# for SyncBN.
_base_ = [
    './_base_/models/locat_vit_upernet.py', './_base_/datasets/synthetic_shapes_64.py',
    'mmseg::_base_/default_runtime.py'
]
num_classes = 7
embed_dims = 128
# tools/demo.py draws the segmentation set at the pretraining size, with objects of the
# pretraining's scale (13-22 px radius, 3-6 patches across): whole 64 px images are trained
# and validated on the pretrained 8 x 8 patch grid, with no resizing and no crop that cuts a
# shape's outline away (the 96 px set of _base_/datasets/synthetic_shapes.py, cut into 64 px
# crops, left the outlines that tell shapes apart a patch or two wide or outside the crop).
img_size = 64
# Class-balanced cross-entropy: the square root of median-frequency balancing (SegNet's
# median / frequency) for the pixel shares of tools/demo.py's training set (background 79 %;
# cross 3.7, digit 2.4, disc 5.3, ring 3.7, square 3.5, triangle 2.3 %), rounded. Unweighted,
# the rarest classes (digit strokes, triangles) were drowned by background and discs.
class_weight = [0.2, 1.0, 1.2, 0.8, 1.0, 1.0, 1.3]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    # The pretraining's normalisation (mean = std = 127.5, locat_vit_demo_cls_synthetic.py).
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], size=(img_size, img_size)),
    backbone=dict(
        # _delete_: the base's arch is a name ('b'); this one is a dict.
        arch=dict(_delete_=True, embed_dims=embed_dims, num_layers=4, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size=img_size,
        patch_size=8,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        init_cfg=None),
    # Strides 4, 8, 16, 32 from the stride-8 blocks, as the paper's neck makes of stride 16.
    neck=dict(in_channels=[embed_dims] * 4, out_channels=embed_dims, scales=[2, 1, 0.5, 0.25]),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=64, num_classes=num_classes,
                     norm_cfg=norm_cfg,
                     loss_decode=dict(class_weight=class_weight)),
    auxiliary_head=dict(in_channels=embed_dims, channels=32, num_classes=num_classes,
                        norm_cfg=norm_cfg,
                        loss_decode=dict(class_weight=class_weight)))

max_iters = 800
warmup_iters = 50
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01))
# `end` on every scheduler: a default one is stored in checkpoints and would stick when
# resuming with a larger max_iters.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters,
         end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# mmseg's IoUMetric that also returns each class's IoU (tools/demo.py prints them).
val_evaluator = dict(type='ClassIoUMetric')
test_evaluator = val_evaluator
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Fixed-size inputs on CPU: nothing for cudnn.benchmark to tune.
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
