# ViT-S/16 baseline (DeiT recipe, no GAug, no PRR) for LocAtViT-S; same training as
# locat_vit_s_in1k.py. Paper, ImageNet-1k top-1: not reported in the paper for the S size.
_base_ = './locat_vit_s_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
