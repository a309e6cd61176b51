# RegViT-B/16 baseline (ViT-B with registers, no GAug, no PRR) for LocAt-RegViT-B; same training
# as locat_regvit_b_in1k.py. Paper, ImageNet-1k top-1: RegViT-B 80.71, LocAt-RegViT-B 82.19.
_base_ = './locat_regvit_b_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
