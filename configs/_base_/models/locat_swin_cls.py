# LocAtSwin image classifier (mmpretrain ImageClassifier): mmpretrain's Swin classifier
# (configs/swin_transformer/swin-tiny_16xb64_in1k.py: GAP neck, linear head, label smoothing,
# Mixup/CutMix, timm's init) with the backbone type changed. The plain-Swin baselines set
# backbone.gaug=False, backbone.prr=False.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='LocAtSwin',
        arch='tiny',
        img_size=224,
        # GAug in every window; PRR on the last stage's final-norm output, so the GAP neck
        # pools refined tokens (SPEC section 2).
        gaug=True,
        prr=True,
        drop_path_rate=0.2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        init_cfg=None,  # the model's init_cfg below initialises it (timm: like every Linear)
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
    ],
    # Mixup 0.8 and CutMix 1.0, one of the two per batch, as timm's Mixup(switch_prob=0.5).
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
