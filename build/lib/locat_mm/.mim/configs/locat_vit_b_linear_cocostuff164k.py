# LocAtViT-B on COCO-Stuff-164k: linear probe of the frozen last block, 20k iterations, batch 32.
_base_ = ['./_base_/protocols/linear_cocostuff164k.py']
# ImageNet-1k weights of LocAtViT-B: a checkpoint of this project's or mmpretrain's
# classifier, or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_vit_b_in1k.pth'
model = dict(
    backbone=dict(arch='b', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=768))
