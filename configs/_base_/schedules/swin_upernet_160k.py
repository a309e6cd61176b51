# mmseg's Swin UperNet schedule: 160k iterations, 8 GPUs x 2 images, AdamW 6e-5 with no
# weight decay on norms and relative-position tables (no layer-wise decay), 1500 warm-up
# iterations then linear decay; the rest (runtime, schedulers, loops) is the project's UperNet
# schedule.
_base_ = './locat_upernet_160k.py'
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
