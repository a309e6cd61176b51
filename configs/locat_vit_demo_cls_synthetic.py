# Demo, stage 1 (tools/demo.py): MMPretrain image-level pretraining of the demo's LocAtViT on
# the synthetic shape-classification set (the label is the shape of the largest object), the
# recipe of the mini paper (mini_paper/locat_vit_mini_cls.py) on a shorter schedule. Stage 2,
# locat_vit_demo_upernet_synthetic.py, loads the result through the backbone's init_cfg: the
# paper's pipeline (pretrain, then dense fine-tuning) in both toolboxes.
_base_ = './mini_paper/locat_vit_mini_cls.py'

data_root = 'data/synthetic_cls'
max_iters = 600
warmup_iters = 60
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=1e-2, by_epoch=False,
         begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
