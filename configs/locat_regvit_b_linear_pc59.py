# LocAt-RegViT-B on PASCAL-Context-59: linear probe of the frozen last block (register and class
# tokens dropped), 20k iterations, batch 32.
# Paper (frozen linear probe, mIoU): RegViT-B 41.81, LocAt-RegViT-B 46.14.
_base_ = ['./locat_vit_b_linear_pc59.py']
# ImageNet-1k weights of LocAt-RegViT-B: this project's classifier
# (configs/locat_regvit_b_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_regvit_b_in1k.pth'
# The register count of the pretrained model (see locat_regvit_b_in1k.py).
num_register_tokens = 4
model = dict(
    backbone=dict(
        num_register_tokens=num_register_tokens, init_cfg=dict(checkpoint=pretrained)))
