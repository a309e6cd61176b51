# The paper's linear protocol for dense features: a frozen LocAtViT and a light probe
# (LinearSegHead: 1x1 conv to 512, one-group GroupNorm, GELU, 1x1 classifier) on the last
# block's patch tokens.
_base_ = './locat_vit_seg.py'
model = dict(
    backbone=dict(
        out_indices=(11, ),
        # All 12 blocks and the embeddings frozen (and kept in eval mode): only the probe
        # trains.
        frozen_stages=12),
    decode_head=dict(
        type='LinearSegHead',
        in_channels=768,
        channels=512,
        in_index=-1,
        num_classes=150,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
