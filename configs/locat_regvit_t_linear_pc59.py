# LocAt-RegViT-T on PASCAL-Context-59: linear probe of the frozen last block (register and class
# tokens dropped), 20k iterations, batch 32.
# Paper (frozen linear probe, mIoU): RegViT-T 33.45, LocAt-RegViT-T 39.90.
_base_ = ['./locat_vit_t_linear_pc59.py']
# ImageNet-1k weights of LocAt-RegViT-T: this project's classifier
# (configs/locat_regvit_t_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_regvit_t_in1k.pth'
# The register count of the pretrained model (see locat_regvit_t_in1k.py).
num_register_tokens = 4
model = dict(
    backbone=dict(
        num_register_tokens=num_register_tokens, init_cfg=dict(checkpoint=pretrained)))
