# LocAtViT-B/16 on mini-ImageNet-100 (100 ImageNet classes; data/imagenet100/{train,val}/
# <class>/*.JPEG), 600 epochs with 120 warm-up epochs, otherwise the ImageNet-1k recipe.
# For reference, the paper's ImageNet-1k top-1 (300 epochs): ViT-B 80.99, LocAtViT-B 82.31.
_base_ = './locat_vit_b_in1k.py'

num_classes = 100
warmup_epochs = 120
max_epochs = 600

model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)

data_root = 'data/imagenet100'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=_base_.train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

# The ImageNet-1k schedule with the phase boundaries moved.
param_scheduler = [
    dict(_base_.param_scheduler[0], end=warmup_epochs),
    dict(_base_.param_scheduler[1], begin=warmup_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
