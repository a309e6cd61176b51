# LocAtViT image classifier (mmpretrain ImageClassifier): the paper's ImageNet-1k model.
# Variants set backbone.arch, backbone.drop_path_rate and head.in_channels (= embed_dims);
# the plain-ViT baselines set backbone.gaug=False, backbone.prr=False.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='LocAtViT',
        arch='b',
        img_size=224,
        patch_size=16,
        # Final norm (ln1), then PRR over all tokens, then the class token (SPEC section 2).
        out_type='cls_token',
        gaug=True,
        prr=True,
        drop_path_rate=0.4),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        # The reference (timm) initialises the classifier like every Linear; the head's own
        # default would zero it.
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
    # Mixup 0.8 and CutMix 1.0, one of the two per batch, as timm's Mixup(switch_prob=0.5).
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
