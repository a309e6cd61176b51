# Plain Swin-T baseline of locat_swin_t_upernet_ade20k.py: the same model, data and schedule
# without GAug, i.e. mmseg's Swin-T UperNet recipe.
_base_ = ['./locat_swin_t_upernet_ade20k.py']
# ImageNet-1k weights of the plain Swin-T: this project's classifier trained with
# gaug=False, prr=False (configs/swin_t_in1k.py), mmpretrain's or mmseg's Swin-T, or timm's.
pretrained = 'checkpoints/swin_t_in1k.pth'
model = dict(backbone=dict(gaug=False, init_cfg=dict(checkpoint=pretrained)))
