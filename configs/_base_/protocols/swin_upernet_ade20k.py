# UperNet fine-tuning of LocAtSwin on ADE20K: mmseg's Swin UperNet recipe
# (model and schedule) with mmseg's dataset settings.
_base_ = [
    '../models/locat_swin_upernet.py', 'mmseg::_base_/datasets/ade20k.py',
    '../schedules/swin_upernet_160k.py'
]
num_classes = 150
model = dict(
    # Training batches are padded to the dataset's crop size.
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
# 2 images per GPU on 8 GPUs (16 in all), as mmseg's Swin UperNet configs.
train_dataloader = dict(batch_size=2)
