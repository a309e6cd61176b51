# LocAt-Jumbo-T on ADE20K: linear probe of the frozen last block (6 class tokens
# dropped, before the final norm), 20k iterations, batch 32: the protocol of
# locat_vit_t_linear_ade20k.py with the LocAtJumbo backbone.
_base_ = ['./locat_vit_t_linear_ade20k.py']
# ImageNet-1k weights of LocAt-Jumbo-T: this project's classifier
# (configs/locat_jumbo_t_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_jumbo_t_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='LocAtJumbo',
        arch='t',
        # The grid the weights and GAug were built for; larger inputs run as they are.
        img_size=224,
        patch_size=16,
        out_type='featmap',
        final_norm=False,
        out_indices=(11, ),
        # All 12 blocks and the embeddings frozen (and kept in eval mode): only the probe
        # trains.
        frozen_stages=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
