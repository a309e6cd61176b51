# The paper's linear protocol for dense features: a frozen LocAtViT and a light probe
# (LinearSegHead: 1x1 conv to 512, one-group GroupNorm, GELU, 1x1 classifier) on the last
# block's patch tokens. Widths are LocAtViT-B's; the arch configs override them.
custom_imports = dict(imports=['locat_mm'], allow_failed_imports=False)
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
        # The grid the pretrained weights and GAug were built for; larger inputs are padded
        # and pos_embed resized at run time, so this must not be the crop size.
        img_size=224,
        patch_size=16,
        out_indices=(11, ),
        # Last block's patch tokens as (B, C, H/16, W/16), before the final norm (SPEC
        # section 3); PRR only acts on pooled outputs.
        out_type='featmap',
        final_norm=False,
        with_cls_token=True,
        # All 12 blocks and the embeddings frozen (and kept in eval mode): only the probe
        # trains.
        frozen_stages=12,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/locat_vit_b_in1k.pth')),
    decode_head=dict(
        type='LinearSegHead',
        in_channels=768,
        channels=512,
        in_index=-1,
        num_classes=150,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
