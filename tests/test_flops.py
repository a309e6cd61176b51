"""mmengine's ``get_model_complexity_info`` on LocAtViT and the plain ViT (fused SDPA), checked
against a count of the architecture made by hand here.

mmengine's conventions (``mmengine.analysis``): one multiply-add is one FLOP; a linear layer or
convolution counts its products and not its bias; an affine LayerNorm counts 5 per element;
elementwise ops (GELU, softmax, GAug's exponent, additions) count nothing. Attention counts its
two matrix products, ``queries * keys * c`` each per head; PRR refines the class token alone
(one query).
"""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info

from locat_mm import LocAtViT

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
IMG, PATCH, BATCH = 64, 16, 2


def flops(model, size) -> int:
    inputs = (torch.randn(BATCH, 3, *size), )
    return get_model_complexity_info(
        model.eval(), inputs=inputs, show_table=False, show_arch=False)['flops']


def hand_count(size, gaug: bool, prr: bool) -> dict:
    """FLOPs of each part of ``LocAtViT(ARCH, img_size=IMG, gaug=gaug, prr=prr)`` (class-token
    output, final norm) on a batch of BATCH images of ``size``."""
    D, F, heads = ARCH['embed_dims'], ARCH['feedforward_channels'], ARCH['num_heads']
    c = D // heads
    H, W = size[0] // PATCH, size[1] // PATCH
    H0 = W0 = IMG // PATCH
    L = 1 + H * W  # class token and patches
    tokens = BATCH * L
    layer = {
        'layer_norm': 2 * 5 * tokens * D,
        'linear': tokens * (D * 3 * D + D * D + 2 * D * F),  # qkv, projection, MLP
        'attention': 2 * BATCH * heads * L * L * c,  # q k^T and (softmax) v
        # GAug's Linear(c, 2) and Linear(c, 1) on every query of every head.
        'gaug': 3 * BATCH * heads * L * c if gaug else 0,
    }
    count = {key: ARCH['num_layers'] * value for key, value in layer.items()}
    count['layer_norm'] += 5 * tokens * D  # final norm
    count['patch_embed'] = BATCH * H * W * (3 * PATCH * PATCH) * D
    count['prr'] = 2 * BATCH * heads * 1 * L * c if prr else 0
    # The position-embedding grid (one, of D channels) resized, always, identity included, as
    # rows @ grid @ cols^T by locat_mm.ops.resize: two 2-d products with the channels folded
    # into the columns (so that torch.export sees fixed folds), (H, H0) @ (H0, W0 * D) then
    # (W, W0) @ (W0, H * D). 2-d operands, so mmengine's matmul handle (prod(first shape) *
    # last dim) counts every multiply-add: D * H * H0 * W0 + D * W * W0 * H. (The earlier
    # 4-d broadcast product (H, H0) @ (1, D, H0, W0) was counted only H * H0 * W0, D times too
    # few, by that same rule.)
    count['pos_embed_resize'] = D * H * H0 * W0 + D * H * W0 * W
    return count


@pytest.mark.parametrize('size', [(64, 64), (64, 96), (96, 48)])
@pytest.mark.parametrize('gaug,prr', [(True, True), (False, False), (True, False)],
                         ids=['locat', 'vit', 'gaug_only'])
def test_complexity_info_is_the_hand_count(size, gaug, prr):
    torch.manual_seed(0)
    model = LocAtViT(ARCH, img_size=IMG, gaug=gaug, prr=prr)
    want = hand_count(size, gaug, prr)
    assert flops(model, size) == sum(want.values()), want
    by_op = FlopAnalyzer(model.eval(), (torch.randn(BATCH, 3, *size), )).by_operator()
    # The attention handles of locat_mm.engine.flops: the layers' op and PRR's.
    layers_op, prr_op = ('gaug_attention', 'scaled_dot_product_attention') if gaug else \
        ('scaled_dot_product_attention', 'gaug_attention')
    assert by_op.get(layers_op, 0) == want['attention']
    assert by_op.get(prr_op, 0) == want['prr']
    assert by_op.get('matmul', 0) == want['pos_embed_resize']  # the resize's products only


def test_operator_counts_as_the_dense_formula():
    """The dense path's attention is two visible matmuls; the operator counts the same."""
    torch.manual_seed(0)
    fast = LocAtViT(ARCH, img_size=IMG)
    dense = LocAtViT(ARCH, img_size=IMG, gaug_impl='dense')
    dense.load_state_dict(fast.state_dict())
    assert flops(fast, (64, 96)) == flops(dense, (64, 96))
