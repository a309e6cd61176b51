# ImageNet-1k with Swin's timm augmentation (mmpretrain's reproduction of it: ImageNet
# mean/std, RandomResizedCrop, flip, RandAugment rand-m9-mstd0.5-inc1 padding with the mean,
# RandomErasing 0.25 with per-pixel normal noise, no ColorJitter since timm drops it under
# RandAugment); 128 images per GPU (8 GPUs x 128 = the recipe's batch of 1024).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py'

# Evaluation as timm's validation of its Swin models: crop_pct 0.9 (shorter side
# floor(224 / 0.9) = 248, then the central 224 x 224); mmpretrain's and the Swin authors'
# scripts use 0.875 (256).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
# persistent_workers is stated (False) because mmpretrain's and this project's train.py turn
# it on when a config is silent, and DataLoader refuses it with num_workers=0.
train_dataloader = dict(batch_size=128, num_workers=8, persistent_workers=False)
val_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
