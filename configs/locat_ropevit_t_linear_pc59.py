# LocAt-RoPE-ViT-T on PASCAL-Context-59: linear probe of the frozen last block (class token
# dropped, before the final norm), 20k iterations, batch 32: the protocol of
# locat_vit_t_linear_pc59.py with the LocAtRoPEViT backbone.
_base_ = ['./locat_vit_t_linear_pc59.py']
# ImageNet-1k weights of LocAt-RoPE-ViT-T: this project's classifier
# (configs/locat_ropevit_t_in1k.py) or the authors' (timm layout). Point this at your copy.
pretrained = 'checkpoints/locat_ropevit_t_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='LocAtRoPEViT',
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
