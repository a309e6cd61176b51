# Plain Jumbo-B baseline of locat_jumbo_b_linear_pc59.py: the same model, data
# and schedule without GAug and PRR, so the two configs give one row of the comparison.
_base_ = ['./locat_jumbo_b_linear_pc59.py']
# ImageNet-1k weights of the plain Jumbo-B: this project's classifier
# (configs/jumbo_b_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/jumbo_b_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
