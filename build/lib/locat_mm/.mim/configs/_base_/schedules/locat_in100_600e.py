# The ImageNet-1k schedule stretched for mini-ImageNet-100: 600 epochs, 120 of warm-up.
_base_ = './locat_in1k_300e.py'

warmup_epochs = 120
max_epochs = 600
param_scheduler = [
    dict(_base_.param_scheduler[0], end=warmup_epochs),
    dict(_base_.param_scheduler[1], begin=warmup_epochs, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
