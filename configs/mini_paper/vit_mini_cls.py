# Plain-ViT baseline of locat_vit_mini_cls.py: the same model without GAug and PRR, the same
# data and recipe.
_base_ = './locat_vit_mini_cls.py'

model = dict(backbone=dict(gaug=False, prr=False))
