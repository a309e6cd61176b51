# LocAt-Jumbo-T/16 (LocAtJumbo: the authors' locatjumbo_tiny) on ImageNet-1k, 224 px,
# 300 epochs, total batch 1024 (8 GPUs x 128).
# The recipe: the authors train every family with one script (their train.py and README), whose
# defaults are those of locat_vit_t_in1k.py (AdamW, lr 1e-3 per 1024, weight decay 0.05, 20
# warm-up epochs, Mixup/CutMix, label smoothing 0.1, drop path 0.1 for 'tiny' models); assumed
# here to be the one the paper's Jumbo rows used. As the authors' Jumbo: 6 class tokens, layer
# scale 1e-4, the classifier (on the 6 class tokens concatenated, 1152 wide) starts with zero
# weights and bias -6.9 (log 1/1000: uniform predictions).
_base_ = './locat_vit_t_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='LocAtJumbo',
        arch='t',
        img_size=224,
        patch_size=16,
        num_class_tokens=6,
        jumbo_mlp_ratio=4,
        # Final norms (class tokens concatenated; patches), then PRR over all tokens, then the
        # 6 class tokens concatenated.
        out_type='cls_token',
        layer_scale_init_value=1e-4,
        gaug=True,
        prr=True,
        drop_path_rate=0.1),
    head=dict(
        in_channels=1152,
        init_cfg=dict(_delete_=True, type='Constant', layer='Linear', val=0., bias=-6.9)))
