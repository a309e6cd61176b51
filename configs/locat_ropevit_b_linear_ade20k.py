# LocAt-RoPE-ViT-B on ADE20K: linear probe of the frozen last block (class token
# dropped, before the final norm), 20k iterations, batch 32: the protocol of
# locat_vit_b_linear_ade20k.py with the LocAtRoPEViT backbone.
_base_ = ['./locat_vit_b_linear_ade20k.py']
# ImageNet-1k weights of LocAt-RoPE-ViT-B: this project's classifier
# (configs/locat_ropevit_b_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_ropevit_b_in1k.pth'
# The family's own arguments keep their defaults; the rest is the LocAtViT probe's.
model = dict(backbone=dict(type='LocAtRoPEViT', init_cfg=dict(checkpoint=pretrained)))
