# LocAt-Jumbo-B on PASCAL-Context-59: linear probe of the frozen last block (6 class tokens
# dropped, before the final norm), 20k iterations, batch 32: the protocol of
# locat_vit_b_linear_pc59.py with the LocAtJumbo backbone.
_base_ = ['./locat_vit_b_linear_pc59.py']
# ImageNet-1k weights of LocAt-Jumbo-B: this project's classifier
# (configs/locat_jumbo_b_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_jumbo_b_in1k.pth'
# The family's own arguments keep their defaults; the rest is the LocAtViT probe's.
model = dict(backbone=dict(type='LocAtJumbo', init_cfg=dict(checkpoint=pretrained)))
