# ViT-B/16 baseline (no GAug, no PRR) for locat_vit_b_in100.py, same training.
_base_ = './locat_vit_b_in100.py'

model = dict(backbone=dict(gaug=False, prr=False))
