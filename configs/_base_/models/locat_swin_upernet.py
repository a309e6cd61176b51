# LocAtSwin + UperNet: mmseg's Swin UperNet (mmseg::_base_/models/upernet_swin.py with
# configs/swin/swin-tiny-patch4-window7-in1k-pre_upernet_*: mmseg's SwinTransformer
# arguments, drop path 0.3, the four stages at strides 4/8/16/32, UPerHead and an auxiliary
# FCNHead on stage 2) with the backbone type changed to LocAtSwin. mmseg's arguments select
# mmseg's conventions: outputs after each stage's norm, small maps padded, no PRR.
_base_ = './locat_vit_seg.py'
# SyncBN as upstream; mmengine turns it into BN when training runs in one process.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='LocAtSwin',
        pretrain_img_size=224,
        embed_dims=96,
        patch_size=4,
        window_size=7,
        mlp_ratio=4,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True),
        gaug=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/locat_swin_t_in1k.pth')),
    decode_head=dict(
        type='UPerHead',
        in_channels=[96, 192, 384, 768],
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
        in_channels=384,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
