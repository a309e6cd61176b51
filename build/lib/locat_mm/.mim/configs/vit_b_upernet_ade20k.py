# Plain-ViT baseline of locat_vit_b_upernet_ade20k.py: the same model, data and schedule
# without GAug and PRR, so the two configs give one row of the comparison.
# Reference: mmseg's ViT-B + MultiLevelNeck + UperNet, ADE20K 160k, single scale: 46.75 mIoU
# (vit_vit-b16_mln_upernet_8xb2-160k; an ImageNet-21k-pretrained ViT-B);
# DeiT-B + UperNet (no neck): 45.36 (vit_deit-b16_upernet_8xb2-160k), with
# a MultiLevelNeck: 45.46.
_base_ = ['./locat_vit_b_upernet_ade20k.py']
# ImageNet-1k weights of the plain ViT-B (DeiT-B recipe): this project's
# classifier trained with gaug=False, prr=False, mmpretrain's, or a timm/DeiT checkpoint.
pretrained = 'checkpoints/vit_b_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
