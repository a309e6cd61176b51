"""A checkpoint that does not fit its model is an error saying what the file is and what does
not fit, by module; partial loading is an explicit choice (issue 17, probes 2 and 3)."""
import json
import re
import struct

import pytest
import torch
from demo_helpers import DEMO_CONFIG, data_root_options, load_tool, make_tiny_data
from mmengine.config import Config
from mmengine.registry import DefaultScope

import locat_mm  # noqa: F401  (guards mmengine's loaders)
from locat_mm.checkpoint import (ALLOW_PARTIAL_ENV, CheckpointFormatError,
                                 CheckpointMismatchError, load_checkpoint, model_fit,
                                 summarise_keys)
from locat_mm.models import LocAtViT

# The reference fixture's model: the authors' LocAtViT of width 128, depth 3, 10 classes.
AUTHORS = "a classifier: a LocAtViT of width 128, depth 3 in the authors' (timm) layout"


@pytest.fixture
def authors_file(reference_fixture, tmp_path):
    """The authors' raw (timm-layout) checkpoint file: a bare state dict."""
    path = str(tmp_path / 'locatvit_raw.pth')
    torch.save(reference_fixture['state_dict'], path)
    return path


def assert_no_wall(message: str, limit: int = 2500) -> None:
    # Summarised by module: a handful of groups, not one line per key.
    assert len(message) < limit and message.count('backbone.layers.') <= 6


# ------------------------------------------------------------------ probe 2: the whole model
def test_tools_test_refuses_the_authors_backbone_for_a_segmentor(tmp_path, authors_file):
    root = make_tiny_data(str(tmp_path / 'data'))
    with pytest.raises(CheckpointMismatchError) as error:
        load_tool('test').main([DEMO_CONFIG, authors_file, '--work-dir', str(tmp_path / 'wd'),
                                '--cfg-options', *data_root_options(root)])
    message = str(error.value)
    assert f"Checkpoint '{authors_file}' ({AUTHORS}; 10 classes)" in message
    assert 'whose backbone is a LocAtViT of width 128, depth 4; 7 classes' in message
    assert 'Missing from the checkpoint:' in message
    assert 'backbone.layers.{0-3} (64 keys)' in message
    assert 'blocks.{0-2}.attn (24 keys)' in message and '0 keys fit' in message
    assert "model.backbone.init_cfg=dict(type='Pretrained'" in message
    assert '--allow-partial' in message
    assert_no_wall(message)


def test_tools_test_refuses_the_authors_classifier_for_another_classifier(tmp_path,
                                                                          authors_file):
    from test_launchers import MMPRETRAIN_CONFIG

    from locat_mm.datasets import make_synthetic_classification
    root = str(tmp_path / 'cls')
    make_synthetic_classification(root, num_train=6, num_val=6, size=32)
    config = tmp_path / 'tiny_cls.py'
    config.write_text(MMPRETRAIN_CONFIG.replace('{root}', root))
    with pytest.raises(CheckpointMismatchError) as error:
        load_tool('test').main([str(config), authors_file, '--work-dir', str(tmp_path / 'wd')])
    message = str(error.value)
    # The authors' file is converted first (tools/test.py does so for mmpretrain configs).
    assert ('(a whole model (backbone, head) whose backbone is a LocAtViT of width 128, '
            'depth 3; 10 classes) does not fit the model (a whole model (backbone, head) whose '
            'backbone is a LocAtViT of width 48, depth 2; 6 classes)') in message
    assert 'Missing from the checkpoint: head.fc (2 keys)' in message
    assert ('In the checkpoint but not in the model: backbone.layers.2 (16 keys), '
            'head.layers (2 keys)') in message
    assert_no_wall(message)


def demo_runner(tmp_path, load_from: str):
    from locat_mm import launch
    root = make_tiny_data(str(tmp_path / 'data'))
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.merge_from_dict({**dict(o.split('=', 1) for o in data_root_options(root)),
                         'work_dir': str(tmp_path / 'wd'), 'load_from': load_from})
    return launch.build_runner(cfg)


def test_runner_load_from_and_resume_refuse_and_allow_partial_on_request(
        tmp_path, authors_file, monkeypatch):
    runner = demo_runner(tmp_path, authors_file)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=re.escape(AUTHORS)):
        runner.load_or_resume()
    with pytest.raises(CheckpointMismatchError, match=re.escape(AUTHORS)):
        runner.resume(authors_file)
    # Refused before any weight was copied.
    assert all(torch.equal(before[k], v) for k, v in runner.model.state_dict().items())
    # The model's own checkpoint loads, every key.
    own = str(tmp_path / 'own.pth')
    torch.manual_seed(0)
    for param in runner.model.parameters():
        param.data.normal_(0, 0.02)
    torch.save({'state_dict': runner.model.state_dict()}, own)
    other = demo_runner(tmp_path, own)
    other.load_or_resume()
    assert all(torch.equal(runner.model.state_dict()[k], v)
               for k, v in other.model.state_dict().items())
    # --allow-partial: a warning, and what fits loads.
    monkeypatch.setenv(ALLOW_PARTIAL_ENV, '1')
    demo_runner(tmp_path, authors_file).load_or_resume()


def test_get_model_refuses_a_checkpoint_of_another_model(authors_file, tmp_path, monkeypatch):
    from mmpretrain import get_model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        with pytest.raises(CheckpointMismatchError) as error:
            get_model('locat-vit-t-p16_in1k', pretrained=authors_file)
        message = str(error.value)
        assert AUTHORS in message and 'a LocAtViT of width 192, depth 12; 1000 classes' in message
        assert 'backbone.layers.{0-11} (192 keys)' in message
        assert_no_wall(message)
        # A checkpoint of this model with a head of other classes: the shapes are named.
        model = get_model('locat-vit-t-p16_in1k', head=dict(num_classes=10))
        path = str(tmp_path / 'ten_classes.pth')
        torch.save({'state_dict': model.state_dict()}, path)
        with pytest.raises(CheckpointMismatchError,
                           match=r'head.layers.head.weight: \(10, 192\) in the checkpoint, '
                           r'\(1000, 192\) in the model'):
            get_model('locat-vit-t-p16_in1k', pretrained=path)
        monkeypatch.setenv(ALLOW_PARTIAL_ENV, '1')
        partial = get_model('locat-vit-t-p16_in1k', pretrained=path)
        assert torch.equal(partial.backbone.cls_token, model.backbone.cls_token)


def test_model_fit_sees_through_the_backbones_load_hook(reference_fixture):
    """The authors' layout is converted by the backbone's hook: it fits, nothing is copied."""
    config = reference_fixture['config']
    model = LocAtViT(arch=dict(embed_dims=config['embed_dim'], num_layers=config['depth'],
                               num_heads=config['num_heads'],
                               feedforward_channels=4 * config['embed_dim']),
                     img_size=config['img_size'], patch_size=config['patch_size'],
                     final_norm=True)
    state = {k: v for k, v in reference_fixture['state_dict'].items()
             if not k.startswith('head.')}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit = model_fit(model, state)
    assert fit.fits and fit.matched == len(before)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(state) == {k for k in reference_fixture['state_dict'] if not k.startswith('head.')}


def test_keys_are_summarised_by_module():
    keys = [f'backbone.layers.{i}.attn.qkv.weight' for i in range(12)]
    keys += ['backbone.cls_token', 'decode_head.conv_seg.weight', 'decode_head.conv_seg.bias',
             'neck.convs.2.conv.weight']
    assert summarise_keys(keys) == ('backbone.layers.{0-11} (12 keys), backbone (1 key), '
                                    'decode_head.conv_seg (2 keys), neck.convs.2 (1 key)')
    assert summarise_keys(keys, limit=2).endswith('and 2 more modules')


# ------------------------------------------------------------------ probe 3: say what the file is
def write(path, data: bytes) -> str:
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def truncated_copy(src: str, dst: str) -> str:
    with open(src, 'rb') as f:
        data = f.read()
    return write(dst, data[:len(data) // 2])


@pytest.mark.parametrize('trust', [False, True])
def test_files_that_are_no_checkpoint_are_named(tmp_path, trust):
    whole = str(tmp_path / 'whole.pth')
    torch.save({'w': torch.zeros(64)}, whole)
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.zeros(64)}, legacy, _use_new_zipfile_serialization=False)
    header = json.dumps({'w': {'dtype': 'F32', 'shape': [1], 'data_offsets': [0, 4]}}).encode()
    cases = {
        write(tmp_path / 'page.pth', b'<!DOCTYPE html>\n<html>Not Found</html>\n'):
            "a text file (it starts with '<!DOCTYPE html>'",
        write(tmp_path / 'lfs.pth', b'version https://git-lfs.github.com/spec/v1\noid sha256:'):
            'a Git LFS pointer',
        write(tmp_path / 'empty.pth', b''): 'an empty file',
        truncated_copy(whole, tmp_path / 'cut.pth'): 'a truncated or damaged zip file',
        truncated_copy(legacy, tmp_path / 'cut_legacy.pth'):
            'a torch checkpoint that is truncated or damaged',
        write(tmp_path / 'w.safetensors', struct.pack('<Q', len(header)) + header + bytes(4)):
            'a safetensors file',
        write(tmp_path / 'w.h5', b'\x89HDF\r\n\x1a\n' + bytes(32)): 'an HDF5 file',
    }
    for path, what in cases.items():
        with pytest.raises(CheckpointFormatError) as error:
            load_checkpoint(path, trust=trust)
        assert repr(path) in str(error.value) and what in str(error.value), path
        assert 'could run code' not in str(error.value)
    assert torch.equal(load_checkpoint(legacy, trust=trust)['w'], torch.zeros(64))


def test_the_runners_loader_names_a_text_file_too(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    path = write(tmp_path / 'model.pth', b'404: Not Found\n')
    with pytest.raises(CheckpointFormatError, match="a text file .it starts with '404"):
        CheckpointLoader.load_checkpoint(path)


def small_vit(width: int, depth: int, **kwargs) -> LocAtViT:
    return LocAtViT(arch=dict(embed_dims=width, num_layers=depth, num_heads=2,
                              feedforward_channels=2 * width), img_size=32, **kwargs)


def test_a_backbone_of_another_width_is_named_and_strict_false_loads_what_fits(tmp_path):
    path = str(tmp_path / 'w192.pth')
    torch.save(small_vit(192, 2).state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as error:
        small_vit(128, 2, init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    message = str(error.value)
    assert f"Checkpoint '{path}' (a LocAtViT of width 192, depth 2)" in message
    assert 'the backbone (a LocAtViT of width 128, depth 2' in message
    assert ('patch_embed.projection.weight: (192, 3, 16, 16) in the checkpoint, '
            '(128, 3, 16, 16) in the model') in message
    assert 'plain ViT' not in message and 'strict=False' not in message
    assert_no_wall(message, limit=1500)
    # strict=False: a warning, and the keys of other shapes are left out (no size-mismatch
    # error from torch); nothing of this checkpoint fits here but the GAug weights.
    lenient = small_vit(128, 2, init_cfg=dict(type='Pretrained', checkpoint=path, strict=False))
    lenient.init_weights()


@pytest.mark.parametrize('depth', [3, 1])
def test_a_locatvit_of_another_depth_is_not_called_another_kind(tmp_path, depth):
    path = str(tmp_path / 'other_depth.pth')
    torch.save(small_vit(64, depth).state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as error:
        small_vit(64, 2, init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    message = str(error.value)
    assert f'(a LocAtViT of width 64, depth {depth})' in message and 'depth differs' in message
    assert 'gaug=True' not in message and 'plain ViT' not in message
