# The synthetic shapes dataset (locat_mm.datasets, ADE20K layout): 96x96 images, 7 classes
# (background + 6 shapes), written by `tools/dataset_converters/make_synthetic.py seg ROOT`
# (tools/demo.py does it). Label 0 is a real class, so no reduce_zero_label.
dataset_type = 'SyntheticShapesDataset'
data_root = 'data/synthetic_seg'
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # Scale jitter around the 96 px images, then a crop: at least 72 px, so the crop fits.
    dict(type='RandomResize', scale=(96, 96), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    # Annotations load after Resize: metrics compare against the original-size labels.
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    # In-process loading: the images are tiny, and worker processes would compete with
    # training for the CPU. persistent_workers must then be False (mmpretrain's train.py and
    # ours would otherwise switch it on, which needs workers).
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
