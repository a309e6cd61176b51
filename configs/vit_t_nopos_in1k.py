# ViT-T/16 without position embedding (no GAug, no PRR): the baseline of
# locat_vit_t_nopos_in1k.py, same training. Paper, ImageNet-1k top-1 without position
# embedding: ViT-T 69.36, LocAtViT-T 73.10.
_base_ = './locat_vit_t_nopos_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
