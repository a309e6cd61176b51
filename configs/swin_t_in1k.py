# Swin-T baseline (no GAug, no PRR) for LocAtSwin-T; same training as locat_swin_t_in1k.py
# (Swin's standard recipe). Paper, ImageNet-1k top-1: Swin-T 81.18, LocAtSwin-T 81.43.
_base_ = './locat_swin_t_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
