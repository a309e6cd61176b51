# Plain Jumbo-T baseline of locat_jumbo_t_linear_cocostuff164k.py: the same model, data
# and schedule without GAug and PRR, so the two configs give one row of the comparison.
_base_ = ['./locat_jumbo_t_linear_cocostuff164k.py']
# ImageNet-1k weights of the plain Jumbo-T: this project's classifier
# (configs/jumbo_t_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/jumbo_t_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
