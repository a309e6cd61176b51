# ViT-B/16 baseline (DeiT recipe, no GAug, no PRR) for LocAtViT-B; same training as
# locat_vit_b_in1k.py. Paper, ImageNet-1k top-1: ViT-B 80.99, LocAtViT-B 82.31.
_base_ = './locat_vit_b_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
