# LocAtSwin-T on COCO-Stuff-164k: UperNet fine-tuning with mmseg's Swin recipe, 160k
# iterations, 8 GPUs x 2 images.
_base_ = ['./_base_/protocols/swin_upernet_cocostuff164k.py']
# ImageNet-1k weights of LocAtSwin-T: this project's classifier (configs/locat_swin_t_in1k.py)
# or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_swin_t_in1k.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
