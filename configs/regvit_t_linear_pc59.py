# Plain RegViT-T baseline of locat_regvit_t_linear_pc59.py: the same model, data and
# schedule without GAug and PRR, so the two configs give one row of the comparison.
_base_ = ['./locat_regvit_t_linear_pc59.py']
# ImageNet-1k weights of the plain RegViT-T: this project's classifier
# (configs/regvit_t_in1k.py) or a timm-layout ViT with the same registers.
pretrained = 'checkpoints/regvit_t_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
