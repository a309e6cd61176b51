# LocAtViT-T on PASCAL-Context-59: linear probe of the frozen last block, 20k iterations, batch 32.
_base_ = ['./_base_/protocols/linear_pc59.py']
# ImageNet-1k weights of LocAtViT-T: a checkpoint of this project's or mmpretrain's
# classifier, or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_vit_t_in1k.pth'
model = dict(
    backbone=dict(arch='t', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=192))
