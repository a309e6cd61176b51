# LocAtViT + UperNet, mmseg's ViT UperNet recipe (mmseg configs/vit/*_mln_upernet_*, built on
# _base_/models/upernet_vit-b16_ln_mln.py) with a LocAtViT backbone: blocks (2, 5, 8, 11) at
# stride 16, a MultiLevelNeck making them strides 4/8/16/32, UPerHead and an auxiliary FCNHead
# on the last level.
_base_ = './locat_vit_seg.py'
# SyncBN as upstream; mmengine turns it into BN when training runs in one process.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(out_indices=(2, 5, 8, 11), drop_path_rate=0.1),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[768, 768, 768, 768],
        out_channels=768,
        scales=[4, 2, 1, 0.5]),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=3,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
