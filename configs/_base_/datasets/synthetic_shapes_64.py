# The synthetic shapes dataset drawn at 64 px (tools/demo.py and tools/mini_paper.py draw it at
# their pretraining's size and scale): whole images, trained and validated on the pretrained
# patch grid with no resizing and no crop, flips only; batches of 16 (2000 training images,
# and larger matrices keep both cores busy).
_base_ = ['./synthetic_shapes.py']
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
