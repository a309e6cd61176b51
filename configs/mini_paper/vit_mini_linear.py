# Plain-ViT baseline of locat_vit_mini_linear.py: the same probe on the ViT of vit_mini_cls.py.
_base_ = './locat_vit_mini_linear.py'

model = dict(backbone=dict(gaug=False, prr=False,
                           init_cfg=dict(checkpoint='work_dirs/vit_mini_cls/iter_800.pth')))
