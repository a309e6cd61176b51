# The synthetic shape-classification set (locat_mm.datasets, ImageNet layout): 64x64 images,
# 6 classes (the shape of the largest object), written by
# `tools/dataset_converters/make_synthetic.py cls ROOT` or tools/mini_paper.py.
dataset_type = 'CustomDataset'
data_root = 'data/synthetic_cls'
# The class names (locat_mm.datasets.CLS_CLASSES, the order of the label indices): the Runner
# saves them in each checkpoint's dataset_meta, where inferencers read them.
classes = ('cross', 'digit', 'disc', 'ring', 'square', 'triangle')
img_size = 64
data_preprocessor = dict(
    num_classes=6, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
# The in1k recipe's augmentation at this size: a mild random-resized crop (the labelled object
# covers a third of the image; small crops would cut it away) and flips.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.7, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# In-process loading: the images are tiny and worker processes would compete with training
# for the CPU.
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train',
                 ann_file='meta/train.txt', classes=classes, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val',
                 ann_file='meta/val.txt', classes=classes, pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
