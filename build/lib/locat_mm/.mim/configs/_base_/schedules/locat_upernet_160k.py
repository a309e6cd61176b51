# UperNet fine-tuning schedule: mmseg's ViT UperNet recipe (160k iterations, 8 GPUs x 2
# images, AdamW 6e-5, 1500 warm-up iterations then linear decay) plus layer-wise lr decay.
_base_ = [
    'mmseg::_base_/schedules/schedule_160k.py', 'mmseg::_base_/default_runtime.py'
]
max_iters = 160000
warmup_iters = 1500
optimizer = dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=optimizer,
    # Block i of 12 trains at lr * 0.65 ** (12 - i), the embeddings at lr * 0.65 ** 13, the
    # neck and heads at lr. The constructor also turns weight decay off for 1-D parameters
    # (all norms, biases), pos_embed and cls_token: upstream's `custom_keys={'norm': ...}`
    # matched none of the ViT's LayerNorms, which are named ln1/ln2.
    constructor='LocAtLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
# `end` is set on every scheduler: a default one is stored in checkpoints and would stick
# when resuming with a larger max_iters.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
