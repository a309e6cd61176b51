# LocAtViT-S/16 on ImageNet-1k, 224 px, 300 epochs, total batch 1024 (8 GPUs x 128).
# Paper (Hajimiri et al., ICLR 2026), ImageNet-1k top-1: not reported in the paper for the S size.
_base_ = [
    '_base_/models/locat_vit_cls.py',
    '_base_/datasets/locat_imagenet_bs128.py',
    '_base_/schedules/locat_in1k_300e.py',
    '_base_/locat_cls_runtime.py',
]

model = dict(
    backbone=dict(arch='s', drop_path_rate=0.2),
    head=dict(in_channels=384),
)
