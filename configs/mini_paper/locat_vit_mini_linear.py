# The paper in miniature, stage 2: the paper's frozen linear probe (LinearSegHead on the last
# block, before the final norm; _base_/models/locat_vit_linear.py) on the small LocAtViT of
# locat_vit_mini_cls.py, trained on the synthetic segmentation set (64 px, flat fill) with the
# paper's one-cycle probe schedule shrunk to 500 iterations of 16 images. tools/mini_paper.py
# sets the pretrained checkpoint (model.backbone.init_cfg.checkpoint).
_base_ = [
    '../_base_/models/locat_vit_linear.py', '../_base_/datasets/synthetic_shapes_64.py',
    'mmseg::_base_/default_runtime.py'
]
num_classes = 7
embed_dims = 128
num_layers = 4
img_size = 64
model = dict(
    data_preprocessor=dict(
        # The pretraining's normalisation (mean = std = 127.5), so the frozen features see
        # the inputs they were trained on.
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], size=(img_size, img_size)),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=embed_dims, num_layers=num_layers, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size=img_size,
        patch_size=8,
        out_indices=(num_layers - 1, ),
        out_type='featmap',
        final_norm=False,
        frozen_stages=num_layers,
        gaug=True,
        prr=True,
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint='work_dirs/locat_vit_mini_cls/iter_800.pth')),
    decode_head=dict(in_channels=embed_dims, num_classes=num_classes))

max_iters = 500
warmup_iters = 125
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, end_factor=1.0, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=1e-8, by_epoch=False,
         begin=warmup_iters, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
