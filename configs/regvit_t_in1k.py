# RegViT-T/16 baseline (ViT-T with registers, no GAug, no PRR) for LocAt-RegViT-T; same training
# as locat_regvit_t_in1k.py. Paper, ImageNet-1k top-1: RegViT-T 72.90, LocAt-RegViT-T 74.08.
_base_ = './locat_regvit_t_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
