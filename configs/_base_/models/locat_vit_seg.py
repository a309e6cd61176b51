# What the segmentation protocols share: an mmseg EncoderDecoder on a LocAtViT that gives dense
# features, ImageNet normalisation and a pretrained backbone. Widths are LocAtViT-B's; the
# arch configs override them.
custom_imports = dict(imports=['locat_mm'], allow_failed_imports=False)
# The random generators' states go into checkpoints, so a resumed run (dropout, drop path,
# augmentation on) repeats the uninterrupted one (locat_mm/engine/rng_hook.py).
custom_hooks = [dict(type='RNGStateHook')]
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
        # Dense features (B, C, H/16, W/16), taken before the final norm (SPEC section 3).
        # PRR only acts on pooled (classification) outputs, so it plays no part here. The
        # class token (with_cls_token's default) is in the blocks, not in the output; left
        # unset so that the families' configs (no such argument) inherit this backbone.
        out_type='featmap',
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/locat_vit_b_in1k.pth')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
