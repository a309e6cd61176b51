# LocAtViT-T/16 without any position embedding (the paper's ablation: GAug is then the only
# positional signal); otherwise the training of locat_vit_t_in1k.py.
# Paper, ImageNet-1k top-1 without position embedding: ViT-T 69.36, LocAtViT-T 73.10.
_base_ = './locat_vit_t_in1k.py'

model = dict(backbone=dict(with_pos_embed=False))
