# ImageNet-1k, DeiT/timm augmentation as used by LocAtViT; 128 images per GPU
# (8 GPUs x 128 = the recipe's batch of 1024).
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
# The reference normalises with mean = std = 0.5 (IMAGENET_INCEPTION_*), here 255-scaled.
data_preprocessor = dict(
    num_classes=1000, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
# timm fills RandAugment's borders with round(0.5 * 255) and erases with N(0, 1) noise after
# normalisation, i.e. mean + std * N(0, 1) in pixel space.
pad_val = 128
fill_mean = [127.5, 127.5, 127.5]
fill_std = [127.5, 127.5, 127.5]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # timm's 'rand-m9-mstd0.5-inc1'. timm skips its ColorJitter(0.4) whenever RandAugment is on
    # (transforms_factory: "color jitter is typically disabled if AA/RA on"), so the recipe's
    # color_jitter=0.4 has no effect and no ColorJitter step is added here.
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=pad_val, interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=fill_mean,
        fill_std=fill_std),
    dict(type='PackInputs'),
]

# Crop ratio 0.9: shorter side floor(224 / 0.9) = 248, then the central 224 x 224.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# persistent_workers is stated (False) because mmpretrain's and this project's train.py turn
# it on when a config is silent, and DataLoader refuses it with num_workers=0
# (`--cfg-options train_dataloader.num_workers=0`); respawning workers costs seconds per epoch.
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
