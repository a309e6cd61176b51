# LocAtSwin-T on PASCAL-Context-59: linear probe of the frozen last stage (stride 32, before the
# final norm), 20k iterations, batch 32.
# Paper (frozen linear probe, mIoU): Swin-T 36.78, LocAtSwin-T 37.65.
_base_ = ['./_base_/protocols/swin_linear_pc59.py']
# ImageNet-1k weights of LocAtSwin-T: this project's classifier (configs/locat_swin_t_in1k.py)
# or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_swin_t_in1k.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
