# mini-ImageNet-100: 100 ImageNet classes in data/imagenet100/{train,val}/<class>/*.JPEG,
# with the ImageNet-1k pipelines and batch.
_base_ = './locat_imagenet_bs128.py'

data_preprocessor = dict(num_classes=100)
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
