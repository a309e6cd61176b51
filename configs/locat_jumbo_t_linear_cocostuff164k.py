# LocAt-Jumbo-T on COCO-Stuff-164k: linear probe of the frozen last block (6 class tokens
# dropped, before the final norm), 20k iterations, batch 32: the protocol of
# locat_vit_t_linear_cocostuff164k.py with the LocAtJumbo backbone.
_base_ = ['./locat_vit_t_linear_cocostuff164k.py']
# ImageNet-1k weights of LocAt-Jumbo-T: this project's classifier
# (configs/locat_jumbo_t_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_jumbo_t_in1k.pth'
# The family's own arguments keep their defaults; the rest is the LocAtViT probe's.
model = dict(backbone=dict(type='LocAtJumbo', init_cfg=dict(checkpoint=pretrained)))
