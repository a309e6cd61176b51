# Plain-ViT baseline of locat_vit_t_linear_pc59.py: the same model, data and schedule
# without GAug and PRR, so the two configs give one row of the comparison.
_base_ = ['./locat_vit_t_linear_pc59.py']
# ImageNet-1k weights of the plain ViT-T (DeiT-T recipe): this project's
# classifier trained with gaug=False, prr=False, mmpretrain's, or a timm/DeiT checkpoint.
pretrained = 'checkpoints/vit_t_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
