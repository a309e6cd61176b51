# LocAt-RoPE-ViT-B/16 (LocAtRoPEViT: the authors' locatvit_base_rope_mixed) on ImageNet-1k,
# 224 px, 300 epochs, total batch 1024 (8 GPUs x 128).
# The recipe: the authors train every family with one script (their train.py and README), whose
# defaults are those of locat_vit_b_in1k.py (AdamW, lr 1e-3 per 1024, weight decay 0.05, 20
# warm-up epochs, Mixup/CutMix, label smoothing 0.1, drop path 0.4 for 'base' models); assumed
# here to be the one the paper's RoPE-ViT rows used. As timm's Eva: the RoPE frequencies get no
# weight decay, and the classifier starts at 1e-3 of the usual init (head_init_scale).
_base_ = './locat_vit_b_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='LocAtRoPEViT',
        arch='b',
        img_size=224,
        patch_size=16,
        # Final norm over all tokens, then PRR, then the class token.
        out_type='cls_token',
        layer_scale_init_value=1e-5,
        rope_temperature=10.,
        gaug=True,
        prr=True,
        drop_path_rate=0.4),
    head=dict(in_channels=768, init_cfg=dict(type='TruncNormal', layer='Linear', std=2e-5)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.rope.freqs': dict(decay_mult=0.0)}))
