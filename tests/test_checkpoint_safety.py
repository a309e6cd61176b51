"""Checkpoints are read with ``weights_only=True`` at every entry point (locat_mm/checkpoint.py).

The hostile file is a real checkpoint (a state dict of tensors) with one extra object whose
unpickling runs a shell command that creates a marker file. Every entry point must refuse it
with the error that names the way out (``--trust-checkpoint``), and the marker must not exist.
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from demo_helpers import DEMO_CONFIG, data_root_options, load_tool, make_tiny_data
from test_launchers import MMPRETRAIN_CONFIG

import locat_mm  # noqa: F401  (guards mmengine's loaders)
from locat_mm.checkpoint import TRUST_ENV, UntrustedCheckpointError, load_checkpoint

TINY_ARCH = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=32)


class RunsCode:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.fixture
def hostile(tmp_path):
    """(path of a code-running checkpoint, path of the marker its payload would create)."""
    marker = str(tmp_path / 'code_ran')
    path = str(tmp_path / 'hostile.pth')
    torch.manual_seed(0)
    state_dict = {'backbone.cls_token': torch.zeros(1, 1, 32), 'head.weight': torch.randn(5, 32)}
    torch.save({'state_dict': state_dict, 'meta': {'note': RunsCode(marker)}}, path)
    return path, marker


def assert_refused(excinfo, marker: str) -> None:
    assert '--trust-checkpoint' in str(excinfo.value) and TRUST_ENV in str(excinfo.value)
    assert not osp.exists(marker), 'the checkpoint ran code'


def test_payload_is_real(hostile):
    """Trusted explicitly, the file does run its code: the refusals below are not vacuous."""
    path, marker = hostile
    load_checkpoint(path, trust=True)
    assert osp.exists(marker)


def test_trust_environment_variable(hostile, monkeypatch):
    from mmengine.runner.checkpoint import _load_checkpoint
    path, marker = hostile
    monkeypatch.setenv(TRUST_ENV, '1')
    _load_checkpoint(path, map_location='cpu')
    assert osp.exists(marker)


def test_loader_refuses(hostile):
    path, marker = hostile
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        load_checkpoint(path)
    assert_refused(excinfo, marker)
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        load_checkpoint(path, mmap=True)
    assert_refused(excinfo, marker)


def test_mmengine_loaders_refuse(hostile):
    """What the Runner's load_from and resume, and OpenMMLab init_cfg, read through."""
    from mmengine.runner.checkpoint import _load_checkpoint
    from mmengine.runner.checkpoint import load_checkpoint as mmengine_load
    path, marker = hostile
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        _load_checkpoint(path, map_location='cpu')
    assert_refused(excinfo, marker)
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        mmengine_load(torch.nn.Linear(2, 2), path)
    assert_refused(excinfo, marker)


def test_backbone_init_cfg_refuses(hostile):
    from locat_mm.models import LocAtViT
    path, marker = hostile
    model = LocAtViT(arch=TINY_ARCH, img_size=32, patch_size=8,
                     init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        model.init_weights()
    assert_refused(excinfo, marker)


def test_converter_refuses(hostile, tmp_path):
    path, marker = hostile
    tool = osp.join(REPO, 'tools', 'model_converters', 'locat_timm2mm.py')
    result = subprocess.run([sys.executable, tool, path, str(tmp_path / 'out.pth')],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stderr[-2000:]
    assert '--trust-checkpoint' in result.stderr and 'Refusing to load' in result.stderr
    assert not osp.exists(marker) and not osp.exists(tmp_path / 'out.pth')


def test_visualisation_refuses(hostile, tmp_path):
    import importlib.util
    from test_cls_configs import tiny_classifier_cfg
    path, marker = hostile
    spec = importlib.util.spec_from_file_location(
        'visualize_locat', osp.join(REPO, 'tools', 'analysis', 'visualize_locat.py'))
    vis = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vis)
    config = str(tmp_path / 'cls.py')
    tiny_classifier_cfg('locat_vit_t_in1k', num_classes=5).dump(config)
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        vis.load_classifier(config, path)
    assert_refused(excinfo, marker)


def test_tools_test_refuses_for_an_mmpretrain_config(hostile, tmp_path):
    path, marker = hostile
    config = tmp_path / 'tiny_cls.py'
    config.write_text(MMPRETRAIN_CONFIG.replace('{root}', str(tmp_path / 'absent')))
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        load_tool('test').main([str(config), path, '--work-dir', str(tmp_path / 'wd')])
    assert_refused(excinfo, marker)


@pytest.mark.slow
def test_tools_test_and_resume_refuse_for_an_mmseg_config(hostile, tmp_path):
    path, marker = hostile
    root = make_tiny_data(str(tmp_path / 'data'))
    common = ['--work-dir', str(tmp_path / 'wd'), '--cfg-options', *data_root_options(root),
              'experiment_name=hostile', 'visualizer.name=hostile']
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        load_tool('test').main([DEMO_CONFIG, path, *common])
    assert_refused(excinfo, marker)
    with pytest.raises(UntrustedCheckpointError) as excinfo:
        load_tool('train').main([DEMO_CONFIG, '--resume', path, *common])
    assert_refused(excinfo, marker)


def test_getattr_is_allowed_for_history_buffer_statistics_only(tmp_path):
    """mmengine's HistoryBuffer pickles its statistics via builtins.getattr; nothing else may
    use it, and torch's process-wide allow-list stays as it was."""
    import builtins

    class Fetches:

        def __reduce__(self):
            return getattr, (np.ndarray, 'tofile')

    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': Fetches()}, path)
    with pytest.raises(UntrustedCheckpointError, match='tofile'):
        load_checkpoint(path)
    assert builtins.getattr not in torch.serialization.get_safe_globals()


def test_mmengine_training_checkpoint_loads(tmp_path):
    """A checkpoint the Runner writes (message hub, numpy scalars, RNG states) loads safely,
    and torch's own weights_only load, without this project's allow-list, would refuse it."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='loss'):
            return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())

    class Points(torch.utils.data.Dataset):

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return dict(inputs=torch.full((2, ), float(index)))

    runner = Runner(
        model=Tiny(), work_dir=str(tmp_path), experiment_name='safe_ckpt',
        train_dataloader=dict(dataset=Points(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=[dict(type='RNGStateHook')], randomness=dict(seed=1))
    runner.train()
    path = str(tmp_path / 'iter_2.pth')
    checkpoint = load_checkpoint(path)
    loss = checkpoint['message_hub']['log_scalars']['train/loss']
    assert len(loss.data[0]) == 2 and np.isfinite(loss.mean())
    assert len(checkpoint['rng_states']) == 1
    with pytest.raises(Exception, match='HistoryBuffer|getattr|Unsupported global'):
        torch.load(path, weights_only=True)
