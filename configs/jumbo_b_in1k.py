# Jumbo-B/16 baseline (6 class tokens and the shared jumbo MLP, no GAug, no PRR and so no
# patch norm: the authors' jumbo_base) for LocAt-Jumbo-B; same training as
# locat_jumbo_b_in1k.py.
_base_ = './locat_jumbo_b_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
