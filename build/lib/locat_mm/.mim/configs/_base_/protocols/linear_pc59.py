# Linear probe of frozen features on PASCAL-Context (59 classes): mmseg's dataset settings (crop,
# augmentation, single-scale whole-image test) with the protocol's model and schedule. Widths are
# LocAtViT-B's; the configs in configs/ set the arch and the pretrained checkpoint.
_base_ = [
    '../models/locat_vit_linear.py', 'mmseg::_base_/datasets/pascal_context_59.py',
    '../schedules/locat_linear_20k.py'
]
num_classes = 59
model = dict(
    # Training batches are padded to the dataset's crop size.
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=num_classes))
# The paper's batch is 32 images in all, on one GPU: with N GPUs, set 32 // N.
train_dataloader = dict(batch_size=32)
