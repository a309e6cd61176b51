# LocAtViT + UperNet, mmseg's ViT UperNet recipe (mmseg configs/vit/*_mln_upernet_*, built on
# _base_/models/upernet_vit-b16_ln_mln.py) with a LocAtViT backbone: blocks (2, 5, 8, 11) at
# stride 16, a MultiLevelNeck making them strides 4/8/16/32, UPerHead and an auxiliary FCNHead
# on the last level. Widths are LocAtViT-B's; the arch configs override them.
custom_imports = dict(imports=['locat_mm'], allow_failed_imports=False)
# SyncBN as upstream; mmengine turns it into BN when training runs in one process.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet mean/std in 0-255 RGB: the paper's dense protocols use them, although the
    # classification recipe normalises with mean = std = 127.5.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='LocAtViT',
        arch='b',
        # The grid the pretrained weights and GAug were built for (14 x 14). Larger inputs
        # are padded to a multiple of 16, pos_embed is resized and GAug told the new grid at
        # run time, so this must not be the crop size.
        img_size=224,
        patch_size=16,
        out_indices=(2, 5, 8, 11),
        # Dense features (B, C, H/16, W/16), taken before the final norm (SPEC section 3).
        # PRR only acts on pooled (classification) outputs, so it plays no part here.
        out_type='featmap',
        final_norm=False,
        with_cls_token=True,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/locat_vit_b_in1k.pth')),
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
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
