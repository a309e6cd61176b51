# ViT-T/16 baseline (DeiT recipe, no GAug, no PRR) for LocAtViT-T; same training as
# locat_vit_t_in1k.py. Paper, ImageNet-1k top-1: ViT-T 72.39, LocAtViT-T 73.94.
_base_ = './locat_vit_t_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
