# Jumbo-T/16 baseline (6 class tokens and the shared jumbo MLP, no GAug, no PRR and so no
# patch norm: the authors' jumbo_tiny) for LocAt-Jumbo-T; same training as
# locat_jumbo_t_in1k.py.
_base_ = './locat_jumbo_t_in1k.py'

model = dict(backbone=dict(gaug=False, prr=False))
