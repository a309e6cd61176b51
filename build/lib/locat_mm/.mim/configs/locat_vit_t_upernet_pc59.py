# LocAtViT-T on PASCAL-Context-59: UperNet fine-tuning, 160k iterations, 8 GPUs x 2 images.
_base_ = ['./_base_/protocols/upernet_pc59.py']
# ImageNet-1k weights of LocAtViT-T: a checkpoint of this project's or mmpretrain's
# classifier, or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_vit_t_in1k.pth'
model = dict(
    backbone=dict(arch='t', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[192] * 4, out_channels=192),
    decode_head=dict(in_channels=[192] * 4),
    auxiliary_head=dict(in_channels=192))
