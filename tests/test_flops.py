"""mmengine's ``get_model_complexity_info`` counts the attention of LocAtViT and of the plain
ViT (fused SDPA), checked against the analytic count ``B * heads * queries * L * 2c`` per
attention (PRR refines the class token alone: one query)."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info

from locat_mm import LocAtViT
from locat_mm.engine.flops import ATTENTION_OPS

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def flops(model, size) -> int:
    inputs = (torch.randn(2, 3, *size), )
    return get_model_complexity_info(
        model.eval(), inputs=inputs, show_table=False, show_arch=False)['flops']


def attention_op_flops(model, size) -> int:
    by_op = FlopAnalyzer(model.eval(), (torch.randn(2, 3, *size), )).by_operator()
    return sum(by_op[op.split('::')[1]] for op in ATTENTION_OPS)


def attention_flops(size, attentions: int, prr: bool) -> int:
    """Per attention two (queries x c) by (c x L)-sized products per head, batch 2, one class
    token; every token is a query, but PRR's only query is the class token."""
    L = 1 + (size[0] // 16) * (size[1] // 16)
    c = ARCH['embed_dims'] // ARCH['num_heads']
    return (attentions * L + int(prr)) * 2 * ARCH['num_heads'] * L * 2 * c


@pytest.mark.parametrize('size', [(64, 64), (64, 96)])
@pytest.mark.parametrize('gaug,prr', [(True, True), (False, False)], ids=['locat', 'vit'])
def test_attention_is_counted(size, gaug, prr):
    torch.manual_seed(0)
    model = LocAtViT(ARCH, img_size=64, gaug=gaug, prr=prr)
    assert attention_op_flops(model, size) == attention_flops(size, ARCH['num_layers'], prr)
    # ... and they are part of what get_model_complexity_info reports.
    assert flops(model, size) == FlopAnalyzer(model, (torch.randn(2, 3, *size), )).total()


def test_operator_counts_as_the_dense_formula():
    """The dense path's attention is two visible matmuls; the operator counts the same."""
    torch.manual_seed(0)
    fast = LocAtViT(ARCH, img_size=64)
    dense = LocAtViT(ARCH, img_size=64, gaug_impl='dense')
    dense.load_state_dict(fast.state_dict())
    assert flops(fast, (64, 96)) == flops(dense, (64, 96))
