# Linear probe of frozen LocAtSwin features on ADE20K: the linear protocol of
# linear_ade20k.py (mmseg's dataset settings, the probe's schedule) on the Swin model.
_base_ = [
    '../models/locat_swin_linear.py', 'mmseg::_base_/datasets/ade20k.py',
    '../schedules/locat_linear_20k.py'
]
num_classes = 150
model = dict(
    # Training batches are padded to the dataset's crop size.
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=num_classes))
# The paper's batch is 32 images in all, on one GPU: with N GPUs, set 32 // N.
train_dataloader = dict(batch_size=32)
