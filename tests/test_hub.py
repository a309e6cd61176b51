"""The authors' releases by name (``hf-hub:<repo>[@<revision>]``), offline, from a hub cache.

The cache holds releases written as the authors' ``PyTorchModelHubMixin`` writes them
(``tests/hub_cache.py``): the reference fixture's weights as ``sinahmr/locatvit_tiny`` (its tiny
architecture: width 128, depth 3, heads 2, 10 classes) and, for the model index, a random
LocAtViT-T (width 192, depth 12, heads 3, 1000 classes) as the same repository in a second
cache. ``huggingface_hub`` reads ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` once, when it is first
imported, so the in-process tests set both variables and its two constants; the converter runs
in a fresh process with the variables alone.
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from hub_cache import commit_id, mixin_config, release_files, write_release

from locat_mm import LocAtViT
from locat_mm.hub import HubCheckpointError, ReleaseMismatchError, parse_hub_name
from locat_mm.models.ckpt_convert import convert_timm_classifier

TINY = 'hf-hub:sinahmr/locatvit_tiny'
FIXTURE_ARCH = dict(embed_dims=128, num_layers=3, num_heads=2, feedforward_channels=512)


def fixture_config(fixture: dict, **changes) -> dict:
    """The fixture's ``config.json`` as the authors' class saves it (timm adds ``in_chans``)."""
    return mixin_config(**dict(fixture['config'], in_chans=3, **changes))


def use_cache(monkeypatch, cache: str) -> None:
    import huggingface_hub.constants as constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', cache)
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', cache)


@pytest.fixture(scope='module')
def fixture_cache(reference_fixture, tmp_path_factory) -> str:
    """``sinahmr/locatvit_tiny`` = the fixture's weights (main), and the same weights with a
    ``config.json`` that says ``prr=False`` as tag ``no-prr``."""
    cache = str(tmp_path_factory.mktemp('hub'))
    weights = reference_fixture['state_dict']
    write_release(cache, 'sinahmr/locatvit_tiny',
                  release_files(weights, fixture_config(reference_fixture)), commit_id('main'))
    write_release(cache, 'sinahmr/locatvit_tiny',
                  release_files(weights, fixture_config(reference_fixture, prr=False)),
                  commit_id('no-prr'), refs=('no-prr', ))
    return cache


@pytest.fixture
def offline(fixture_cache, monkeypatch) -> str:
    use_cache(monkeypatch, fixture_cache)
    return fixture_cache


def fixture_backbone(checkpoint: str, **kwargs) -> LocAtViT:
    kwargs = dict(dict(arch=FIXTURE_ARCH, img_size=224, patch_size=16), **kwargs)
    model = LocAtViT(init_cfg=dict(type='Pretrained', checkpoint=checkpoint), **kwargs)
    model.init_weights()
    return model.eval()


def worst(pairs) -> float:
    return max((got - want).abs().max().item() for got, want in pairs)


def test_init_cfg_gives_reference_logits_and_features(reference_fixture, offline):
    head_w = reference_fixture['state_dict']['head.weight']
    head_b = reference_fixture['state_dict']['head.bias']
    cls_model = fixture_backbone(TINY, out_type='cls_token')
    indices = tuple(reference_fixture['cases'][0]['feature_indices'])
    dense = fixture_backbone(TINY, out_type='featmap', out_indices=indices, final_norm=False)
    with torch.no_grad():
        logits = [(cls_model(c['input'])[0] @ head_w.T + head_b, c['logits'])
                  for c in reference_fixture['cases']]
        feats = [(got, want) for c in reference_fixture['cases']
                 for got, want in zip(dense(c['input']), c['features'])]
    assert worst(logits) <= 1e-5
    assert worst(feats) <= 1e-5


def test_get_model_by_name_gives_reference_logits(reference_fixture, offline):
    """get_model('locat-vit-t-p16_in1k', pretrained='hf-hub:...'): the named config (its
    pipeline, PRR, class-token pooling, head) built at the fixture's size through get_model's
    own overrides; backbone and head come from the release."""
    from mmengine.registry import DefaultScope
    from mmpretrain import get_model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = get_model('locat-vit-t-p16_in1k', pretrained=TINY,
                          backbone=dict(arch=dict(FIXTURE_ARCH, _delete_=True), drop_path_rate=0.),
                          head=dict(num_classes=10, in_channels=128)).eval()
    with torch.no_grad():
        pairs = [(model(c['input'], mode='tensor'), c['logits'])
                 for c in reference_fixture['cases']]
    assert worst(pairs) <= 1e-5


def test_get_model_refuses_a_release_of_another_size(offline):
    """The model index's locat-vit-t-p16_in1k is a LocAtViT-T; a release of the fixture's tiny
    size must not half-load into it (mmengine only warns about keys and shapes)."""
    from mmengine.registry import DefaultScope
    from mmpretrain import get_model
    with DefaultScope.overwrite_default_scope('mmpretrain'), \
            pytest.raises(ReleaseMismatchError) as err:
        get_model('locat-vit-t-p16_in1k', pretrained=True)
    message = str(err.value)
    for fact in ('width 128 (release) vs 192 (model)', 'depth 3 (release) vs 12 (model)',
                 'heads 2 (release) vs 3 (model)'):
        assert fact in message, message
    assert 'hf-hub:sinahmr/locatvit_tiny' in message


def test_differences_the_weights_cannot_show_are_refused(offline):
    """PRR has no weights: a release trained without it (revision ``no-prr``) is refused by a
    classifier backbone, and loads into a dense one (dense features never pass PRR)."""
    with pytest.raises(ReleaseMismatchError, match=r'PRR False \(release\) vs True \(model\)'):
        fixture_backbone(TINY + '@no-prr', out_type='cls_token')
    dense = fixture_backbone(TINY + '@no-prr', out_type='featmap', final_norm=False)
    main = fixture_backbone(TINY, out_type='featmap', final_norm=False)
    assert all(torch.equal(a, b) for a, b in zip(dense.state_dict().values(),
                                                 main.state_dict().values()))


@pytest.mark.parametrize('kwargs, fact', [
    (dict(gaug=False), 'GAug True (release) vs False (model)'),
    (dict(with_pos_embed=False), 'position embedding True (release) vs False (model)'),
    (dict(num_register_tokens=4), 'register tokens 0 (release) vs 4 (model)'),
    (dict(patch_size=8), 'patch size 16 (release) vs 8 (model)'),
])
def test_each_difference_is_named(offline, kwargs, fact):
    with pytest.raises(ReleaseMismatchError) as err:
        fixture_backbone(TINY, **kwargs)
    assert fact in str(err.value)


def test_missing_release_offline_says_how_to_get_it(offline):
    with pytest.raises(HubCheckpointError) as err:
        fixture_backbone('hf-hub:sinahmr/locatvit_base')
    message = str(err.value)
    assert 'not in the Hugging Face cache' in message
    assert 'hf download sinahmr/locatvit_base' in message and 'HF_HUB_CACHE' in message


def test_malformed_names():
    assert parse_hub_name('hf-hub:sinahmr/locatvit_base@v1.0') == ('sinahmr/locatvit_base',
                                                                  'v1.0')
    for name in ('hf-hub:locatvit_base', 'hf-hub:sinahmr/locatvit_base@', 'hf-hub:'):
        with pytest.raises(ValueError, match='hf-hub:<owner>/<repo>'):
            parse_hub_name(name)


def test_pytorch_model_bin_goes_through_the_safe_loader(reference_fixture, tmp_path,
                                                         monkeypatch):
    """An older release with ``pytorch_model.bin`` loads through locat_mm.checkpoint; one
    whose pickle needs more than weights is refused before it runs."""
    from locat_mm.checkpoint import UntrustedCheckpointError
    cache = str(tmp_path)
    files = release_files(reference_fixture['state_dict'], fixture_config(reference_fixture),
                          weights='pytorch_model.bin')
    write_release(cache, 'sinahmr/locatvit_tiny', files, commit_id('bin'))
    write_release(cache, 'someone/evil', {
        'config.json': files['config.json'],
        'pytorch_model.bin': _pickle_that_runs_code()}, commit_id('evil'))
    use_cache(monkeypatch, cache)
    model = fixture_backbone(TINY, out_type='cls_token')
    case = reference_fixture['cases'][0]
    head = reference_fixture['state_dict']
    with torch.no_grad():
        logits = model(case['input'])[0] @ head['head.weight'].T + head['head.bias']
    assert worst([(logits, case['logits'])]) <= 1e-5
    with pytest.raises(UntrustedCheckpointError):
        fixture_backbone('hf-hub:someone/evil')


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('true', ))


def _pickle_that_runs_code() -> bytes:
    import io
    buffer = io.BytesIO()
    torch.save({'weights': _RunsCode()}, buffer)
    return buffer.getvalue()


def test_converter_reads_a_release_offline(reference_fixture, fixture_cache, tmp_path):
    """tools/model_converters/locat_timm2mm.py hf-hub:... DST in a process with only the
    environment variables set: DST holds the release converted as a local file would be."""
    dst = str(tmp_path / 'converted.pth')
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HUB_CACHE=fixture_cache, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters', 'locat_timm2mm.py'),
         TINY, dst], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(dst, weights_only=True)
    expected = convert_timm_classifier(reference_fixture['state_dict'])
    assert set(saved['state_dict']) == set(expected)
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in expected.items())
    assert saved['meta']['source'] == TINY
    assert saved['meta']['release']['PRR'] is True
    assert saved['meta']['hf_hub_config']['embed_dim'] == 128

    missing = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters', 'locat_timm2mm.py'),
         'hf-hub:sinahmr/locatvit_base', str(tmp_path / 'b.pth')],
        capture_output=True, text=True, env=env, timeout=600)
    assert missing.returncode == 1 and 'hf download sinahmr/locatvit_base' in missing.stderr


# ---------------------------------------------------------------- the model index, full size
@pytest.fixture(scope='module')
def tiny_release(tmp_path_factory):
    """A LocAtViT-T-shaped release (random weights, 1000 classes) in the authors' layout, as
    ``sinahmr/locatvit_tiny``; and the same weights converted to a local file."""
    torch.manual_seed(0)
    timm = {}
    timm['cls_token'] = torch.randn(1, 1, 192) * .02
    timm['pos_embed'] = torch.randn(1, 197, 192) * .02
    timm['patch_embed.proj.weight'] = torch.randn(192, 3, 16, 16) * .02
    timm['patch_embed.proj.bias'] = torch.randn(192) * .02
    shapes = {'norm1': [(192, ), (192, )], 'norm2': [(192, ), (192, )],
              'attn.qkv': [(576, 192), (576, )], 'attn.proj': [(192, 192), (192, )],
              'attn.gaug.log_var': [(2, 64), (2, )], 'attn.gaug.log_alpha': [(1, 64), (1, )],
              'mlp.fc1': [(768, 192), (768, )], 'mlp.fc2': [(192, 768), (192, )]}
    for i in range(12):
        for name, (w, b) in shapes.items():
            scale = 1. if name.startswith('norm') else .05
            timm[f'blocks.{i}.{name}.weight'] = torch.randn(w) * scale
            timm[f'blocks.{i}.{name}.bias'] = torch.randn(b) * scale
    timm['norm.weight'], timm['norm.bias'] = torch.randn(192), torch.randn(192) * .1
    timm['head.weight'], timm['head.bias'] = torch.randn(1000, 192) * .05, torch.randn(1000)
    cache = str(tmp_path_factory.mktemp('hub_t'))
    config = mixin_config(patch_size=16, embed_dim=192, depth=12, num_heads=3,
                          num_classes=1000, in_chans=3)
    write_release(cache, 'sinahmr/locatvit_tiny', release_files(timm, config), commit_id('t'))
    local = str(tmp_path_factory.mktemp('ckpt') / 'locat_vit_t_converted.pth')
    torch.save({'state_dict': convert_timm_classifier(timm)}, local)
    return cache, local


def test_model_index_loads_the_release_by_name(tiny_release, monkeypatch):
    """get_model('locat-vit-t-p16_in1k', pretrained=True) reads hf-hub:sinahmr/locatvit_tiny:
    the same model as the release converted to a file and loaded by path, and inference by
    name gives ImageNet class names."""
    from mmengine.registry import DefaultScope
    from mmpretrain import get_model, inference_model
    cache, local = tiny_release
    use_cache(monkeypatch, cache)
    image = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    inputs = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        by_name = get_model('locat-vit-t-p16_in1k', pretrained=True).eval()
        by_path = get_model('locat-vit-t-p16_in1k', pretrained=local).eval()
        result = inference_model('locat-vit-t-p16_in1k', image, pretrained=True)
    for (key, a), b in zip(by_name.state_dict().items(), by_path.state_dict().values()):
        assert torch.equal(a, b), key
    with torch.no_grad():
        assert torch.equal(by_name(inputs, mode='tensor'), by_path(inputs, mode='tensor'))
    assert isinstance(result['pred_class'], str) and result['pred_class']
    assert by_name._dataset_meta['classes'][result['pred_label']] == result['pred_class']



@pytest.mark.slow
def test_tools_test_evaluates_a_release(reference_fixture, offline, tmp_path):
    """tools/test.py CONFIG hf-hub:... (the Runner's load_from): the same predictions as
    the release's weights given as an authors' file, which tools/test.py converts itself."""
    import pickle

    from demo_helpers import load_tool
    from test_launchers import write_reference_classifier_config

    from locat_mm.datasets import make_synthetic_classification
    root = str(tmp_path / 'cls')
    make_synthetic_classification(root, num_train=2, num_val=4, size=32)
    config = write_reference_classifier_config(tmp_path / 'release_cls.py', root)
    authors = str(tmp_path / 'authors.pth')
    torch.save({'model': reference_fixture['state_dict']}, authors)
    scores = {}
    for name, checkpoint in (('hub', TINY), ('file', authors)):
        out = str(tmp_path / f'{name}.pkl')
        load_tool('test').main([str(config), checkpoint, '--work-dir', str(tmp_path / name),
                                '--out', out, '--cfg-options', f'experiment_name={name}',
                                f'visualizer.name=release_{name}'])
        with open(out, 'rb') as f:  # the config's loader shuffles: key by image
            scores[name] = {p['img_path']: p['pred_score'] for p in pickle.load(f)}
    assert len(scores['hub']) == 4 and scores['hub'].keys() == scores['file'].keys()
    assert all(torch.equal(scores['hub'][k], scores['file'][k]) for k in scores['hub'])
