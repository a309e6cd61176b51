# Plain-ViT baseline of locat_vit_s_upernet_ade20k.py: the same model, data and schedule
# without GAug and PRR, so the two configs give one row of the comparison.
# Reference: mmseg's DeiT-S + UperNet, ADE20K, single scale: 42.87 mIoU
# (vit_deit-s16_upernet_8xb2-160k: no neck, and the config inherits the 80k
# schedule despite its name); with a MultiLevelNeck as here, 43.82
# (vit_deit-s16_mln_upernet_8xb2-160k).
_base_ = ['./locat_vit_s_upernet_ade20k.py']
# ImageNet-1k weights of the plain ViT-S (DeiT-S recipe): this project's
# classifier trained with gaug=False, prr=False, mmpretrain's, or a timm/DeiT checkpoint.
pretrained = 'checkpoints/vit_s_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
