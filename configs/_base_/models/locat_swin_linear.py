# The paper's linear protocol on Swin: a frozen LocAtSwin and the light probe (LinearSegHead)
# on the last stage (stride 32), taken before the final norm.
_base_ = './locat_vit_seg.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='LocAtSwin',
        arch='tiny',
        img_size=224,
        out_indices=(3, ),
        # No output norm: features before the final norm; PRR only serves classification.
        norm_cfg=None,
        prr=False,
        gaug=True,
        # Segmentation inputs: pad maps smaller than a window, as mmseg's Swin does.
        pad_small_map=True,
        # mmpretrain's count: stages 0..3 and the patch embedding frozen (eval mode): only
        # the probe trains.
        frozen_stages=3,
        drop_path_rate=0.,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/locat_swin_t_in1k.pth')),
    decode_head=dict(
        type='LinearSegHead',
        in_channels=768,
        channels=512,
        in_index=-1,
        num_classes=150,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
