"""One export, right at every input size: padding, patch grid and GAug's grid are symbolic.

A tiny LocAtViT built for 224 px (patch 16) is exported once, at 224 x 224 or at a padded
size, by each tool with dynamic height and width, then run at sizes that need no padding, padding
in height only, in width only, and in both. Features and class-token logits must equal eager's.
Before this, the zero padding to a multiple of the patch was frozen at the traced size: ONNX gave
a 12 x 14 map where eager gives 13 x 15 (class token off by 0.05 here), and a jit trace failed.
"""
import io

import pytest
import torch
import torch.nn as nn
from torch import Tensor

from locat_mm import LocAtViT

# (height, width): no padding, height padded, width padded, both padded.
RUN_SIZES = [(224, 224), (200, 224), (224, 232), (200, 232)]
# Height and width free, their range inferred by torch (named ``Dim``s with a range fail the
# constraint solver on the ceil-division of the padding; see the README).
DYNAMIC_HW = {'x': {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}}
TOL = dict(rtol=1e-5, atol=1e-5)


class Classifier(nn.Module):
    """Backbone feature map and the logits of a linear head on its class token."""

    def __init__(self, antialias: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
        self.backbone = LocAtViT(arch, img_size=224, out_type='featmap', output_cls_token=True,
                                 toolbox='mmpretrain', pos_embed_antialias=antialias)
        self.head = nn.Linear(32, 10)
        with torch.no_grad():
            # Spread weights: the position embedding and GAug's bias then move the outputs.
            self.backbone.pos_embed.normal_(0, 0.5)
            for layer in self.backbone.layers:
                for p in layer.attn.gaug.parameters():
                    p.normal_(0, 1.0)

    def forward(self, x: Tensor):
        featmap, cls_token = self.backbone(x)[-1]
        return featmap, self.head(cls_token)


_MODELS = {}


def model_for(antialias: bool) -> Classifier:
    if antialias not in _MODELS:
        _MODELS[antialias] = Classifier(antialias).eval()
    return _MODELS[antialias]


# (position-embedding resize, export size): the resize both ways at 224 x 224, and an export at
# a padded size run at the others.
CASES = [(True, (224, 224)), (False, (224, 224)), (True, (200, 232))]
CASE_IDS = ['antialias-at224x224', 'plain-resize-at224x224', 'antialias-at200x232']


def images(size, batch: int = 2, seed: int = 1) -> Tensor:
    torch.manual_seed(seed)
    return torch.randn(batch, 3, *size)


def eager(model: Classifier, x: Tensor):
    with torch.no_grad():
        return tuple(t.numpy() for t in model(x))


def check_all_sizes(model: Classifier, run) -> None:
    """``run(x)`` (a numpy pair) equals eager at every size in RUN_SIZES."""
    for size in RUN_SIZES:
        x = images(size)
        want = eager(model, x)
        got = run(x)
        assert got[0].shape == want[0].shape, f'{size}: feature map {got[0].shape}'
        for g, w, name in zip(got, want, ('features', 'logits')):
            torch.testing.assert_close(torch.as_tensor(g), torch.as_tensor(w), **TOL,
                                       msg=lambda m: f'{size} {name}: {m}')


def test_sizes_cover_padding_cases():
    """Guards the cases: the eager grids are ceil(side / 16), and the padded position matters
    """
    grids = [eager(model_for(True), images(s))[0].shape[-2:] for s in RUN_SIZES]
    assert grids == [(14, 14), (13, 14), (14, 15), (13, 15)]


@pytest.mark.parametrize('antialias,export_size', CASES, ids=CASE_IDS)
def test_torch_export(antialias, export_size):
    model = model_for(antialias)
    program = torch.export.export(model, (images(export_size), ), dynamic_shapes=DYNAMIC_HW)
    module = program.module()

    def run(x):
        with torch.no_grad():
            return tuple(t.numpy() for t in module(x))

    check_all_sizes(model, run)


@pytest.mark.parametrize('antialias,export_size', CASES, ids=CASE_IDS)
def test_jit_trace(antialias, export_size):
    model = model_for(antialias)
    with torch.no_grad():
        traced = torch.jit.trace(model, (images(export_size), ), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)

    def run(x):
        with torch.no_grad():
            return tuple(t.numpy() for t in loaded(x))

    check_all_sizes(model, run)


# The dynamo exporter also takes named dims with a range (torch.export alone refuses them).
NAMED_HW = {'x': {2: torch.export.Dim('h', min=32, max=512),
                  3: torch.export.Dim('w', min=32, max=512)}}
ONNX_CASES = [(False, dict(dynamic_axes={'x': {2: 'h', 3: 'w'}})),
              (True, dict(dynamic_shapes=DYNAMIC_HW))]


@pytest.mark.parametrize('dynamo,dynamic', ONNX_CASES, ids=['legacy', 'dynamo'])
@pytest.mark.parametrize('antialias,export_size', CASES, ids=CASE_IDS)
def test_onnx(tmp_path, dynamo, dynamic, antialias, export_size):
    run_onnx(tmp_path, dynamo, dynamic, model_for(antialias), export_size)


def test_onnx_dynamo_named_dims(tmp_path):
    run_onnx(tmp_path, True, dict(dynamic_shapes=NAMED_HW), model_for(True), (224, 224))


def run_onnx(tmp_path, dynamo: bool, dynamic: dict, model: Classifier, export_size) -> None:
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    if dynamo:
        pytest.importorskip('onnxscript')
    path = str(tmp_path / 'model.onnx')
    torch.onnx.export(model, (images(export_size), ), path, dynamo=dynamo, opset_version=17,
                      input_names=['x'], output_names=['features', 'logits'], **dynamic)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    check_all_sizes(model, lambda x: session.run(None, {'x': x.numpy()}))


def test_torch_export_named_range_refused_loudly():
    """torch.export cannot prove the padding's ceiling division over a named range: it refuses
    at export time (the README says to use Dim.DYNAMIC), never exporting a specialised graph."""
    with pytest.raises(Exception, match='Constraints violated'):
        torch.export.export(model_for(True), (images((224, 224)), ), dynamic_shapes=NAMED_HW)
