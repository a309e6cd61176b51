# LocAtViT-T/16 on mini-ImageNet-100, 600 epochs with 120 warm-up epochs, otherwise the
# ImageNet-1k recipe. The paper's ImageNet-1k top-1 (300 epochs): ViT-T 72.39, LocAtViT-T 73.94.
_base_ = [
    '_base_/models/locat_vit_cls.py',
    '_base_/datasets/locat_imagenet100_bs128.py',
    '_base_/schedules/locat_in100_600e.py',
    '_base_/locat_cls_runtime.py',
]

model = dict(
    backbone=dict(arch='t', drop_path_rate=0.1),
    head=dict(in_channels=192, num_classes=100),
)
