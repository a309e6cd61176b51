# Plain RoPE-ViT-B baseline of locat_ropevit_b_linear_pc59.py: the same model, data
# and schedule without GAug and PRR, so the two configs give one row of the comparison.
_base_ = ['./locat_ropevit_b_linear_pc59.py']
# ImageNet-1k weights of the plain RoPE-ViT-B: this project's classifier
# (configs/ropevit_b_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/ropevit_b_in1k.pth'
model = dict(backbone=dict(gaug=False, prr=False, init_cfg=dict(checkpoint=pretrained)))
