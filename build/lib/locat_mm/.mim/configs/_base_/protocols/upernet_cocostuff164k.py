# UperNet fine-tuning on COCO-Stuff-164k (171 classes): mmseg's dataset settings (crop,
# augmentation, single-scale whole-image test) with the protocol's model and schedule. Widths are
# LocAtViT-B's; the configs in configs/ set the arch and the pretrained checkpoint.
_base_ = [
    '../models/locat_vit_upernet.py', 'mmseg::_base_/datasets/coco-stuff164k.py',
    '../schedules/locat_upernet_160k.py'
]
num_classes = 171
model = dict(
    # Training batches are padded to the dataset's crop size.
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
# 2 images per GPU on 8 GPUs (16 in all), as mmseg's ViT UperNet configs.
train_dataloader = dict(batch_size=2)
