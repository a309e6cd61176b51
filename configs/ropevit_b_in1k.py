# RoPE-ViT-B/16 baseline (mixed-mode RoPE, no GAug, no PRR: the authors'
# vit_base_patch16_rope_mixed_224) for LocAt-RoPE-ViT-B; same training as
# locat_ropevit_b_in1k.py.
_base_ = './locat_ropevit_b_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
