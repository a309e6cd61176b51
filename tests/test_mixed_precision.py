"""LocAtViT under autocast (bf16, fp16) against fp32, and a training step with AmpOptimWrapper.

Bounds, per tensor, in units of the half type's unit roundoff u (bf16 2^-8, fp16 2^-11),
on the relative error ||half - fp32|| / ||fp32||:

* output: 8 u; input gradient: 16 u (measured: <= 2 u and <= 7 u);
* each parameter gradient: 32 u times the tensor's cancellation across the batch,
  ||sum_b |g_b| || / ||sum_b g_b|| with g_b the fp32 gradient of sample b (a gradient that is
  a near-cancelling sum is known only to that many roundoffs; measured: <= 10 u).

The model has PyTorch's default init (peaked attention) and GAug weights of unit scale, so
GAug moves the output by 7% (18 u in bf16): an autocast path that lost or mangled the bias
would fail.
"""
import pytest
import torch

from locat_mm.models import LocAtViT

ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def build_model(device: str) -> LocAtViT:
    torch.manual_seed(0)
    model = LocAtViT(arch=ARCH, img_size=32, patch_size=8, out_type='cls_token')
    with torch.no_grad():
        for name, param in model.named_parameters():
            if '.gaug.' in name:
                param.normal_(0, 1.0)
    return model.to(device)


def forward_backward(model, images, dtype=None):
    """(output, input gradient, {parameter: gradient}) in fp32, under autocast(dtype)."""
    model.zero_grad()
    images = images.clone().requires_grad_(True)
    with torch.autocast(images.device.type, dtype=dtype or torch.float32,
                        enabled=dtype is not None):
        out = model(images)[0]
    out.float().pow(2).sum().backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach().float(), images.grad.float(), grads


def relative(got, want) -> float:
    return ((got - want).norm() / want.norm()).item()


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_matches_fp32(device, dtype):
    u = UNIT_ROUNDOFF[dtype]
    model = build_model(device)
    torch.manual_seed(1)
    images = torch.randn(4, 3, 32, 32, device=device)
    out, images_grad, grads = forward_backward(model, images)
    per_sample = [forward_backward(model, images[b:b + 1])[2] for b in range(len(images))]
    half_out, half_images_grad, half_grads = forward_backward(model, images, dtype)

    assert relative(half_out, out) <= 8 * u
    assert relative(half_images_grad, images_grad) <= 16 * u
    assert half_grads.keys() == grads.keys() and len(grads) == len(list(model.parameters()))
    for name, want in grads.items():
        cancellation = (sum(g[name].abs() for g in per_sample).norm() / want.norm()).item()
        error = relative(half_grads[name], want)
        assert error <= 32 * u * cancellation, (
            f'{name}: {error / u:.1f} u, allowed {32 * cancellation:.1f} u')


def test_gaug_matters_beyond_the_bounds():
    """The bounds above can see GAug: without its bias the output moves far past 8 u."""
    model = build_model('cpu')
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        out = model(images)[0]
        for layer in model.layers:
            layer.attn.gaug = None
        plain = model(images)[0]
    assert relative(plain, out) > 2 * 8 * UNIT_ROUNDOFF[torch.bfloat16]


def test_amp_optim_wrapper_training_step():
    """One step of mmengine's AmpOptimWrapper (CPU: bf16, CUDA: fp16) against fp32.

    On CPU this needs ``locat_mm.compat.cpu_amp_optim_wrapper`` (mmengine asserts a GPU).
    """
    import locat_mm  # noqa: F401  (the compat fixes)
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ImageClassifier
    from mmpretrain.structures import DataSample

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dtype = torch.float16 if device == 'cuda' else torch.bfloat16

    def step(wrapper_type, **kwargs):
        torch.manual_seed(0)
        model = ImageClassifier(
            backbone=dict(type='LocAtViT', arch=ARCH, img_size=32, patch_size=8),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=64)).to(device)
        before = [p.detach().clone() for p in model.parameters()]
        wrapper = wrapper_type(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)
        seen = []
        model.backbone.layers[0].attn.qkv.register_forward_hook(
            lambda module, args, out: seen.append(out.dtype))
        torch.manual_seed(1)
        images = torch.randn(4, 3, 32, 32, device=device)
        labels = torch.tensor([0, 1, 2, 3], device=device)
        with wrapper.optim_context(model):
            samples = [DataSample().set_gt_label(label) for label in labels]
            loss = model.head.loss(model.extract_feat(images), samples)['loss']
        wrapper.update_params(loss)
        update = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
        return loss.item(), update, seen

    # A Runner earlier in the session may have left another toolbox's scope as the default.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loss, update, seen = step(OptimWrapper)
        amp_loss, amp_update, amp_seen = step(AmpOptimWrapper, dtype=dtype)
    assert seen == [torch.float32] and amp_seen == [dtype], 'autocast was not applied'
    u = UNIT_ROUNDOFF[dtype]
    assert abs(amp_loss - loss) <= 8 * u * abs(loss)
    assert relative(amp_update, update) <= 32 * u
