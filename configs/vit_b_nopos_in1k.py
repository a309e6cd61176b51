# ViT-B/16 without position embedding (no GAug, no PRR): the baseline of
# locat_vit_b_nopos_in1k.py, same training. Paper, ImageNet-1k top-1 without position
# embedding: ViT-B 79.39, LocAtViT-B 82.17.
_base_ = './locat_vit_b_nopos_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
