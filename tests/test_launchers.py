"""The launchers: tools/train.py and test.py (mmseg and mmpretrain configs), dist_train.sh on CPU
processes, slurm_train.sh's command line, and openmim's ``mim train``/``mim test``."""
import glob
import os
import os.path as osp
import pickle
import stat
import subprocess
import sys

import pytest
from demo_helpers import (DEMO_CONFIG, REPO, data_root_options, load_tool, make_tiny_data,
                          tiny_run_options)
from mmengine.config import Config

from locat_mm import launch
from locat_mm.datasets import make_synthetic_classification

BIN = osp.dirname(sys.executable)
ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, env=kwargs.pop('env', ENV),
                            cwd=REPO, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('data')))


@pytest.fixture(scope='module')
def trained(tiny_root, tmp_path_factory):
    """A 2-iteration demo run through tools/train.py: (work dir, checkpoint)."""
    work_dir = str(tmp_path_factory.mktemp('trained'))
    load_tool('train').main([DEMO_CONFIG, '--work-dir', work_dir, '--cfg-options',
                             *tiny_run_options(tiny_root, 2), 'experiment_name=trained',
                             'visualizer.name=trained'])
    return work_dir, osp.join(work_dir, 'iter_2.pth')


def test_cpu_distributed_adaptation():
    cfg = Config(dict(launcher='pytorch', sync_bn='torch', env_cfg=dict(dist_cfg=dict(
        backend='nccl')), model=dict(decode_head=dict(norm_cfg=dict(type='SyncBN')),
                                     heads=[dict(norm_cfg=dict(type='SyncBN'))])))
    assert launch.adapt_for_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model.decode_head.norm_cfg.type == cfg.model.heads[0].norm_cfg.type == 'BN'
    assert 'sync_bn' not in cfg
    assert not launch.adapt_for_cpu_distributed(Config(dict(launcher='none')))


def test_dataloader_defaults():
    cfg = Config(dict(train_dataloader=dict(num_workers=0),
                      val_dataloader=dict(num_workers=2),
                      test_dataloader=dict(num_workers=2, persistent_workers=True)))
    launch.configure_dataloaders(cfg, launch.DATALOADERS, mmpretrain_defaults=True)
    # mmpretrain's launcher would set persistent_workers=True, which num_workers=0 refuses.
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.val_dataloader.collate_fn == dict(type='default_collate')
    launch.configure_dataloaders(cfg, ['test_dataloader'], mmpretrain_defaults=False,
                                 persistent_workers=False)
    assert cfg.test_dataloader.persistent_workers is False


def test_slurm_train_command(tmp_path):
    """slurm_train.sh's srun line, with a stand-in srun that prints what it got."""
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\necho "MASTER_PORT=$MASTER_PORT PYTHONPATH=$PYTHONPATH"\n'
                    'echo "ARGS $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(ENV, PATH=f'{tmp_path}:{ENV["PATH"]}', GPUS='16', GPUS_PER_NODE='8',
               CPUS_PER_TASK='3', SRUN_ARGS='--qos=high', PORT='29777')
    out = _run(['bash', 'tools/slurm_train.sh', 'part', 'job', 'CFG.py', 'WD', '--amp'],
               env=env)
    assert f'MASTER_PORT=29777 PYTHONPATH={REPO}:' in out
    assert ('ARGS -p part --job-name=job --gres=gpu:8 --ntasks=16 --ntasks-per-node=8 '
            f'--cpus-per-task=3 --kill-on-bad-exit=1 --qos=high {sys.executable} -u '
            f'{REPO}/tools/train.py CFG.py --work-dir=WD --launcher=slurm --amp') in out
    # Without a work dir, options follow the config directly.
    out = _run(['bash', 'tools/slurm_train.sh', 'part', 'job', 'CFG.py', '--amp'], env=env)
    assert 'train.py CFG.py --launcher=slurm --amp' in out


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tiny_root, tmp_path):
    work_dir = str(tmp_path / 'dist')
    out = _run(['bash', 'tools/dist_train.sh', DEMO_CONFIG, '2', '--work-dir', work_dir,
                '--cfg-options', *tiny_run_options(tiny_root, 2)],
               env=dict(ENV, PORT='29613'))
    assert 'gloo' in out
    # Rank 0 alone writes the one checkpoint; both ranks reached the end of training
    # (torchrun exits non-zero if either fails).
    assert sorted(os.listdir(work_dir)).count('iter_2.pth') == 1
    assert glob.glob(osp.join(work_dir, 'iter_*.pth')) == [osp.join(work_dir, 'iter_2.pth')]
    log = open(glob.glob(osp.join(work_dir, '*', '*.log'))[0]).read()
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log  # = processes
    assert 'mIoU' in log


@pytest.mark.slow
def test_dist_test_two_cpu_processes(trained, tiny_root, tmp_path):
    _, checkpoint = trained
    out = _run(['bash', 'tools/dist_test.sh', DEMO_CONFIG, checkpoint, '2', '--work-dir',
                str(tmp_path / 'dist_test'), '--cfg-options', *data_root_options(tiny_root)],
               env=dict(ENV, PORT='29617'))
    assert 'gloo' in out and 'mIoU' in out


@pytest.mark.slow
def test_tools_test_on_checkpoint(trained, tiny_root, tmp_path):
    _, checkpoint = trained
    out_dir, show_dir = str(tmp_path / 'out'), str(tmp_path / 'show')
    # All data roots: with --show-dir, mmseg's SegVisualizationHook reads runner.iter, which
    # builds the train loop and so the train dataset, also when only testing.
    load_tool('test').main([DEMO_CONFIG, checkpoint, '--work-dir', str(tmp_path / 'wd'),
                            '--out', out_dir, '--show-dir', show_dir, '--cfg-options',
                            *data_root_options(tiny_root), 'experiment_name=tested',
                            'visualizer.name=tested'])
    assert len(glob.glob(osp.join(out_dir, '*.png'))) == 2  # predicted label maps
    assert len(glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True)) == 2


@pytest.mark.slow
def test_mim_train_and_test(tiny_root, tmp_path):
    work_dir = str(tmp_path / 'mim')
    out = _run([osp.join(BIN, 'mim'), 'train', 'mmseg', DEMO_CONFIG, '--work-dir', work_dir,
                '--cfg-options', *tiny_run_options(tiny_root, 2)])
    assert 'Training finished successfully' in out
    checkpoint = osp.join(work_dir, 'iter_2.pth')
    out = _run([osp.join(BIN, 'mim'), 'test', 'mmseg', DEMO_CONFIG, '--checkpoint', checkpoint,
                '--work-dir', work_dir, '--cfg-options',
                f'test_dataloader.dataset.data_root={tiny_root}'])
    assert 'mIoU' in out and 'Testing finished successfully' in out


MMPRETRAIN_CONFIG = """
custom_imports = dict(imports=['locat_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='LocAtViT', arch=dict(embed_dims=48, num_layers=2, num_heads=3,
                  feedforward_channels=96), img_size=32, patch_size=8),
    head=dict(type='LinearClsHead', num_classes=6, in_channels=48,
              loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(num_classes=6, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=32),
            dict(type='PackInputs')]
# num_workers=0 and no persistent_workers: upstream's launcher would switch them on and fail.
loader = dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
              dataset=dict(type='CustomDataset', data_root='{root}', data_prefix='train',
                           pipeline=pipeline))
train_dataloader = loader
val_dataloader = dict(loader, dataset=dict(loader['dataset'], data_prefix='val'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1),
                     visualization=dict(type='VisualizationHook', enable=False))
visualizer = dict(type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
"""


@pytest.mark.slow
def test_tools_with_an_mmpretrain_config(tmp_path):
    root = str(tmp_path / 'cls')
    make_synthetic_classification(root, num_train=12, num_val=6, size=32)
    config = tmp_path / 'tiny_cls.py'
    config.write_text(MMPRETRAIN_CONFIG.replace('{root}', root))
    work_dir = str(tmp_path / 'wd')
    load_tool('train').main([str(config), '--work-dir', work_dir, '--cfg-options',
                             'experiment_name=cls_train', 'visualizer.name=cls_train'])
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    out = str(tmp_path / 'preds.pkl')
    load_tool('test').main([str(config), checkpoint, '--work-dir', work_dir, '--out', out,
                            '--cfg-options', 'experiment_name=cls_test',
                            'visualizer.name=cls_test'])
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 6


def write_reference_classifier_config(path, data_root: str) -> str:
    """MMPRETRAIN_CONFIG with the model of the reference fixture (width 128, 3 blocks, 224 px,
    patch 16, a 10-class ViT head) reading ``data_root``, written to ``path``."""
    text = MMPRETRAIN_CONFIG.replace('{root}', data_root).replace(
        "arch=dict(embed_dims=48, num_layers=2, num_heads=3,\n"
        "                  feedforward_channels=96), img_size=32, patch_size=8",
        'arch=dict(embed_dims=128, num_layers=3, num_heads=2, '
        'feedforward_channels=512), img_size=224, patch_size=16').replace(
            "dict(type='LinearClsHead', num_classes=6, in_channels=48",
            "dict(type='VisionTransformerClsHead', num_classes=10, in_channels=128")
    assert 'embed_dims=128' in text and 'VisionTransformerClsHead' in text
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


@pytest.mark.slow
def test_tools_test_reads_an_authors_checkpoint(reference_fixture, tmp_path):
    """tools/test.py evaluates a timm-layout classifier as it is (converted on the fly)."""
    import torch
    from locat_mm.models.ckpt_convert import convert_timm_classifier
    root = str(tmp_path / 'cls')
    make_synthetic_classification(root, num_train=2, num_val=6, size=32)
    config = write_reference_classifier_config(tmp_path / 'authors_cls.py', root)
    authors = tmp_path / 'authors.pth'
    torch.save({'model': reference_fixture['state_dict']}, authors)
    original = authors.read_bytes()
    work_dir = tmp_path / 'wd'
    out = str(tmp_path / 'preds.pkl')
    load_tool('test').main([str(config), str(authors), '--work-dir', str(work_dir), '--out',
                            out, '--cfg-options', 'experiment_name=authors_test',
                            'visualizer.name=authors_test'])
    converted = torch.load(work_dir / 'converted_authors.pth', weights_only=True)
    want = convert_timm_classifier(reference_fixture['state_dict'])
    assert converted['state_dict'].keys() == want.keys()
    assert all(torch.equal(converted['state_dict'][k], want[k]) for k in want)
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 6 and preds[0]['pred_score'].shape == (10, )
    assert authors.read_bytes() == original  # the source checkpoint is left as it was
