"""The configs of LocAt on other families (issues 10, 19): Swin, ViT with registers, ViT without
position embedding, RoPE-ViT, Jumbo. Each builds (model, pipelines, optimizer wrapper) and
follows its recipe; an mmseg Swin config runs with only its backbone type changed; a LocAtSwin
classifier, a LocAtSwin UperNet, a LocAtRoPEViT and a LocAtJumbo classifier train a few
iterations on the synthetic data."""
import glob
import os.path as osp

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from conftest import REPO, project_config
from test_cls_configs import tiny_classifier_cfg, weight_decay_by_name
from test_seg_configs import build_dataset_once, data_roots  # noqa: F401  (fixture)

import locat_mm  # noqa: F401

DATASETS = {'ade20k': 150, 'pc59': 59, 'cocostuff164k': 171}
SWIN_SEG = [f'{m}_t_{p}_{d}' for m in ('locat_swin', 'swin') for p in ('linear', 'upernet')
            for d in DATASETS]
REGVIT_SEG = [f'{m}_{a}_linear_{d}' for m in ('locat_regvit', 'regvit') for a in 'tb'
              for d in DATASETS]
SWIN_CLS = ['locat_swin_t_in1k', 'swin_t_in1k']
VIT_CLS = [f'{m}_{a}_in1k' for m in ('locat_regvit', 'regvit') for a in 'tb'] + \
    [f'{m}_{a}_nopos_in1k' for m in ('locat_vit', 'vit') for a in 'tb']
VIT_WIDTHS = {'t': 192, 'b': 768}
# LocAt on RoPE-ViT and on Jumbo (issue 19): backbone classes and classification widths
# (Jumbo's classifier reads its 6 class tokens concatenated).
NEW_FAMILIES = {'ropevit': ('LocAtRoPEViT', 1), 'jumbo': ('LocAtJumbo', 6)}
NEW_CLS = [f'{m}{f}_{a}_in1k' for f in NEW_FAMILIES for m in ('locat_', '') for a in 'tb']
NEW_SEG = [f'{m}{f}_{a}_linear_{d}' for f in NEW_FAMILIES for m in ('locat_', '') for a in 'tb'
           for d in DATASETS]
MMSEG_SWIN = osp.join(
    osp.dirname(mmseg.__file__), '.mim', 'configs', 'swin',
    'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py')
# A LocAtSwin small enough for training steps on 2 CPU cores: two blocks per stage (plain
# and shifted windows), head width 8, 4 x 4 windows.
TINY_SWIN = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4])


def load(name: str) -> Config:
    return project_config(f'configs/{name}.py')


def test_every_config_has_its_twin():
    names = {osp.basename(p)[:-3] for p in glob.glob(osp.join(REPO, 'configs', '*.py'))}
    assert set(SWIN_SEG + REGVIT_SEG + SWIN_CLS + VIT_CLS) <= names
    assert len({n for n in names if 'swin' in n or 'regvit' in n or 'nopos' in n}) == \
        len(SWIN_SEG + REGVIT_SEG + SWIN_CLS + VIT_CLS)
    assert {n for n in names if 'ropevit' in n or 'jumbo' in n} == set(NEW_CLS + NEW_SEG)


# ----------------------------------------------------------------------------- segmentation
@pytest.mark.parametrize('name', SWIN_SEG)
def test_swin_segmentation_recipe(name):
    family, protocol, dataset = name.split('_t_')[0], *name.split('_')[-2:]
    cfg = load(name)
    locat = family == 'locat_swin'
    assert cfg.custom_imports == dict(imports=['locat_mm'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == 'LocAtSwin' and backbone.gaug is locat
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'checkpoints/{family}_t_in1k.pth')
    assert cfg.model.decode_head.num_classes == DATASETS[dataset]
    assert cfg.crop_size == ((480, 480) if dataset == 'pc59' else (512, 512))
    assert cfg.model.data_preprocessor.size == cfg.crop_size
    assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
    if protocol == 'linear':
        # The last stage at stride 32, before the final norm, frozen; the paper's probe.
        assert (backbone.arch, backbone.out_indices, backbone.norm_cfg) == ('tiny', (3, ), None)
        assert backbone.prr is False and backbone.frozen_stages == 3
        assert cfg.model.decode_head.type == 'LinearSegHead'
        assert cfg.model.decode_head.in_channels == 768
        assert cfg.train_cfg.max_iters == 20000 and cfg.train_dataloader.batch_size == 32
        assert cfg.optim_wrapper.optimizer.lr == 1e-3
    else:
        # mmseg's Swin-T UperNet recipe, with only the backbone type (and weights) changed.
        upstream = Config.fromfile(MMSEG_SWIN)
        expected = dict(upstream.model.backbone, type='LocAtSwin')
        got = {k: v for k, v in backbone.items() if k not in ('gaug', 'init_cfg')}
        expected.pop('init_cfg')
        assert got == expected
        for head in ('decode_head', 'auxiliary_head'):
            assert {k: v for k, v in cfg.model[head].items() if k != 'num_classes'} == \
                {k: v for k, v in upstream.model[head].items() if k != 'num_classes'}
        assert cfg.optim_wrapper == upstream.optim_wrapper
        assert cfg.param_scheduler == upstream.param_scheduler
        assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
        assert cfg.model.auxiliary_head.num_classes == DATASETS[dataset]


@pytest.mark.parametrize('name', REGVIT_SEG)
def test_regvit_segmentation_recipe(name):
    parts = name.split('_')
    arch, dataset = parts[-3], parts[-1]
    locat = name.startswith('locat')
    cfg = load(name)
    vit = load(f'{"locat_vit" if locat else "vit"}_{arch}_linear_{dataset}')
    backbone = cfg.model.backbone
    assert backbone.num_register_tokens == 4
    assert backbone.init_cfg.checkpoint == f'checkpoints/{name.split("_linear")[0]}_in1k.pth'
    # Otherwise the ViT protocol of the same arch.
    for key in ('num_register_tokens', 'init_cfg'):
        backbone.pop(key)
        vit.model.backbone.pop(key, None)
    assert cfg.model == vit.model
    assert cfg.optim_wrapper == vit.optim_wrapper and cfg.train_dataloader == vit.train_dataloader
    assert backbone.get('gaug', True) is locat and backbone.get('prr', True) is locat


@pytest.mark.parametrize('name', SWIN_SEG + REGVIT_SEG + NEW_SEG)
def test_segmentation_model_builds_and_widths_fit(name):
    """Built on the meta device (no memory, no init): every head fits the backbone's widths
    and the logits have the dataset's classes at the protocol's stride."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load(name)
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model).eval()
        logits = model._forward(torch.zeros(1, 3, 64, 64))
    stride = {'swin': 32 if 'linear' in name else 4, 'regvit': 16}['swin' if 'swin' in name
                                                                   else 'regvit']
    classes = DATASETS[name.split('_')[-1]]
    assert logits.shape == (1, classes, 64 // stride, 64 // stride)


@pytest.mark.parametrize('name', ['locat_swin_t_upernet_ade20k', 'locat_swin_t_linear_pc59',
                                  'locat_regvit_t_linear_cocostuff164k',
                                  'locat_ropevit_b_linear_pc59', 'locat_jumbo_t_linear_ade20k'])
def test_segmentation_optimizer_builds(name):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load(name)
    cfg.model.backbone.init_cfg = None
    with torch.device('meta'):  # the parameter groups need names and shapes only
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = weight_decay_by_name(model, wrapper)
    if 'upernet' in name:  # mmseg's Swin paramwise rules
        assert decay['backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table'] == 0
        assert decay['backbone.stages.0.blocks.0.norm1.weight'] == 0
        assert decay['backbone.stages.0.blocks.0.attn.w_msa.gaug.log_var.weight'] == 0.01
    assert decay


@pytest.mark.parametrize('name', SWIN_SEG[:3] + REGVIT_SEG[:1])
def test_segmentation_pipelines(name, data_roots):  # noqa: F811
    """Each dataset's pipelines build and run (once per distinct pipeline, shared with
    test_seg_configs)."""
    init_default_scope('mmseg')
    cfg = load(name)
    for split in ('train', 'val', 'test'):
        dataset_cfg = cfg[f'{split}_dataloader'].dataset
        dataset_cfg.data_root = data_roots[dataset_cfg.type]
        data = build_dataset_once(split, dataset_cfg, DATASETS[name.split('_')[-1]])
        if data is not None:
            assert data[0]['inputs'].shape[0] == 3


def test_mmseg_swin_config_runs_with_only_the_type_changed():
    """Installed mmseg's Swin-T UperNet config, backbone type LocAtSwin: mmseg's arguments,
    outputs and heads, with GAug in every window."""
    from mmseg.registry import MODELS
    from locat_mm.layers.window_attention import WindowLocAtAttention
    init_default_scope('mmseg')
    cfg = Config.fromfile(MMSEG_SWIN)
    cfg.model.backbone.type = 'LocAtSwin'
    cfg.model.backbone.init_cfg = None  # upstream points at a download
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    layers = [m for m in model.backbone.modules() if isinstance(m, WindowLocAtAttention)]
    assert len(layers) == 12 and all(layer.gaug is not None for layer in layers)
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 96))
        logits = model._forward(torch.randn(1, 3, 64, 96))
    assert isinstance(feats, list) and [f.shape[1] for f in feats] == [96, 192, 384, 768]
    assert logits.shape == (1, 150, 16, 24)
    assert build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups


def _family(name: str) -> str:
    return next(f for f in NEW_FAMILIES if f in name)


@pytest.mark.parametrize('name', NEW_SEG)
def test_rope_jumbo_segmentation_recipe(name):
    """The ViT linear protocol of the same arch, with the family's backbone: the last block's
    patches before the final norm, every block frozen, the family's ImageNet weights."""
    parts = name.split('_')
    arch, dataset, locat = parts[-3], parts[-1], name.startswith('locat')
    cfg = load(name)
    vit = load(f'locat_vit_{arch}_linear_{dataset}')
    backbone = cfg.model.backbone
    assert backbone.type == NEW_FAMILIES[_family(name)][0] and backbone.arch == arch
    assert (backbone.out_type, backbone.final_norm, backbone.out_indices,
            backbone.frozen_stages) == ('featmap', False, (11, ), 12)
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'checkpoints/{name.split("_linear")[0]}_in1k.pth')
    assert backbone.get('gaug', True) is locat and backbone.get('prr', True) is locat
    assert cfg.model.decode_head == vit.model.decode_head
    assert cfg.optim_wrapper == vit.optim_wrapper and cfg.train_dataloader == vit.train_dataloader


# ----------------------------------------------------------------------------- classification
@pytest.mark.parametrize('name', NEW_CLS)
def test_rope_jumbo_classification_recipe(name):
    """The authors' one training script: LocAtViT's recipe of the same size, with the
    family's backbone, classifier width and init, and (RoPE) no decay on the frequencies."""
    cfg = load(name)
    arch, locat = name.split('_')[-2], name.startswith('locat')
    vit = load(f'locat_vit_{arch}_in1k')
    cls, tokens = NEW_FAMILIES[_family(name)]
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.drop_path_rate) == \
        (cls, arch, vit.model.backbone.drop_path_rate)
    assert backbone.gaug is locat and backbone.prr is locat
    assert cfg.model.head.in_channels == tokens * VIT_WIDTHS[arch]
    assert cfg.model.train_cfg == vit.model.train_cfg
    assert cfg.param_scheduler == vit.param_scheduler
    assert cfg.train_dataloader == vit.train_dataloader and cfg.train_cfg == vit.train_cfg
    keys = dict(vit.optim_wrapper.paramwise_cfg.custom_keys)
    if cls == 'LocAtRoPEViT':
        keys['.rope.freqs'] = dict(decay_mult=0.0)
        assert backbone.layer_scale_init_value == 1e-5
    else:
        assert (backbone.num_class_tokens, backbone.layer_scale_init_value) == (6, 1e-4)
        # The authors' Jumbo classifier starts at uniform predictions over 1000 classes.
        assert cfg.model.head.init_cfg == dict(type='Constant', layer='Linear', val=0.,
                                               bias=-6.9)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == keys


@pytest.mark.parametrize('name', SWIN_CLS)
def test_swin_classification_recipe(name):
    cfg = load(name)
    upstream = Config.fromfile(osp.join(osp.dirname(MMSEG_SWIN), '..', '..', '..', '..',
                                        'mmpretrain', '.mim', 'configs', 'swin_transformer',
                                        'swin-tiny_16xb64_in1k.py'))
    locat = name.startswith('locat')
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.drop_path_rate) == ('LocAtSwin', 'tiny', 0.2)
    assert backbone.gaug is locat and backbone.prr is locat
    # mmpretrain's Swin-T classifier otherwise (which is Swin's timm recipe).
    for key in ('neck', 'head', 'init_cfg', 'train_cfg'):
        assert cfg.model[key] == upstream.model[key], key
    assert cfg.data_preprocessor == upstream.data_preprocessor
    assert cfg.train_dataloader.dataset.pipeline == upstream.train_dataloader.dataset.pipeline
    assert cfg.train_dataloader.batch_size == 128 and cfg.auto_scale_lr.base_batch_size == 1024
    steps = {s.type: s for s in cfg.test_dataloader.dataset.pipeline}
    assert steps['ResizeEdge'].scale == 248 and steps['CenterCrop'].crop_size == 224
    assert cfg.optim_wrapper.optimizer == dict(upstream.optim_wrapper.optimizer,
                                               _scope_='mmpretrain')
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == \
        {'.relative_position_bias_table': dict(decay_mult=0.0)}
    assert [(s.type, s.begin, s.end) for s in cfg.param_scheduler] == \
        [('LinearLR', 0, 20), ('CosineAnnealingLR', 20, 300)]
    assert (cfg.param_scheduler[0].start_factor, cfg.param_scheduler[1].eta_min) == (1e-3, 1e-5)
    assert cfg.train_cfg.max_epochs == 300
    assert any(h.type == 'GAugStatsHook' for h in cfg.custom_hooks)
    assert cfg.custom_imports == dict(imports=['locat_mm'], allow_failed_imports=False)


@pytest.mark.parametrize('name', VIT_CLS)
def test_vit_variant_classification_recipe(name):
    cfg = load(name)
    locat = name.startswith('locat')
    arch = name.split('_')[-3] if 'nopos' in name else name.split('_')[-2]
    vit = load(f'{"locat_vit" if locat else "vit"}_{arch}_in1k')
    extra = dict(num_register_tokens=4) if 'regvit' in name else dict(with_pos_embed=False)
    assert {k: cfg.model.backbone[k] for k in extra} == extra
    for key in extra:
        cfg.model.backbone.pop(key)
    assert cfg.model == vit.model  # otherwise the ViT of the same arch and training
    assert cfg.optim_wrapper == vit.optim_wrapper and cfg.param_scheduler == vit.param_scheduler
    assert cfg.train_dataloader == vit.train_dataloader


def swin_classifier_cfg(name: str, num_classes: int, data_root=None) -> Config:
    """A Swin classification config shrunk for CPU steps: TINY_SWIN on 32 px with patch 2
    (16 x 16 and 8 x 8 maps in 4 x 4 windows, so windows shift), plain fp32 wrapper."""
    cfg = tiny_classifier_cfg(name, num_classes=num_classes, data_root=data_root, size=32,
                              arch=dict(embed_dims=16, depths=[2, 2], num_heads=[2, 4]))
    cfg.model.backbone.update(patch_size=2, window_size=4, out_indices=(1, ))
    cfg.model.head.in_channels = 32
    return cfg


def family_classifier_cfg(name: str, num_classes: int, data_root=None) -> Config:
    """A shipped classification config shrunk for CPU steps (see ``tiny_classifier_cfg``)."""
    if 'swin' in name:
        return swin_classifier_cfg(name, num_classes)
    cfg = tiny_classifier_cfg(name, num_classes, data_root=data_root)
    if 'jumbo' in name:
        cfg.model.head.in_channels *= NEW_FAMILIES['jumbo'][1]
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('name', SWIN_CLS + VIT_CLS + NEW_CLS)
def test_classification_config_builds(name):
    """Model, data pipelines and optimizer wrapper (paramwise) build and run."""
    from mmpretrain.registry import MODELS, TRANSFORMS
    cfg = family_classifier_cfg(name, 7)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    assert model(torch.randn(2, 3, 32, 32), mode='tensor').shape == (2, 7)
    for loader in ('train_dataloader', 'test_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            TRANSFORMS.build(step)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = weight_decay_by_name(model, wrapper)
    if 'swin' in name:
        assert decay['backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table'] == 0
        assert decay['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'] == 0.05
    if 'regvit' in name:  # as timm: registers (3-D) decay, class token and pos_embed do not
        assert decay['backbone.reg_token'] == 0.05 and decay['backbone.cls_token'] == 0
    if 'ropevit' in name:  # as timm's Eva: no decay on the RoPE frequencies
        assert decay['backbone.layers.1.attn.rope.freqs'] == 0
    if 'jumbo' in name:  # the 6 class tokens as timm's cls_token; the shared MLP decays once
        assert decay['backbone.cls_token'] == 0 and decay['backbone.pos_embed'] == 0
        assert decay['backbone.jumbo_mlp.layers.0.0.weight'] == 0.05
    if name.startswith('locat'):
        gaug = [n for n in decay if n.endswith('gaug.log_var.weight')]
        assert gaug and all(decay[n] == 0.05 for n in gaug)


# ----------------------------------------------------------------------------- training steps
@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    from locat_mm.datasets import make_synthetic_classification, make_synthetic_segmentation
    root = tmp_path_factory.mktemp('synthetic')
    make_synthetic_classification(str(root / 'cls'), num_train=16, num_val=8, size=40)
    make_synthetic_segmentation(str(root / 'seg'), num_train=4, num_val=2)
    return str(root / 'cls'), str(root / 'seg')


def _train(cfg: Config):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _log(work_dir: str) -> str:
    return ''.join(open(p).read() for p in glob.glob(osp.join(work_dir, '*', '*.log')))


@pytest.mark.slow
def test_locat_swin_classifier_trains(synthetic, tmp_path):
    from locat_mm.datasets import CLS_CLASSES
    cfg = swin_classifier_cfg('locat_swin_t_in1k', len(CLS_CLASSES), data_root=synthetic[0])
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='GAugStatsHook', interval=1)]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.randomness = dict(seed=0)
    runner = _train(cfg)
    log = _log(str(tmp_path))
    assert 'Epoch(train) [1][2/2]' in log and 'accuracy/top1' in log
    assert 'gaug/l3_var_row' in log  # the stats hook reads the window attentions
    assert osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
    assert runner.model.backbone.stages[0].blocks[0].attn.w_msa.gaug is not None


@pytest.mark.slow
@pytest.mark.parametrize('name', ['locat_ropevit_t_in1k', 'locat_jumbo_t_in1k'])
def test_rope_jumbo_classifier_trains(name, synthetic, tmp_path):
    """A few iterations of the shipped recipe (shrunk) on the synthetic data: the loss is
    finite, GAug's stats are logged and every trained parameter moved (the jumbo MLP too)."""
    from locat_mm.datasets import CLS_CLASSES
    cfg = family_classifier_cfg(name, len(CLS_CLASSES), data_root=synthetic[0])
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='GAugStatsHook', interval=1)]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.randomness = dict(seed=0)
    # A constant lr instead of the warm-up's first 1e-7: small gradients (layer scale 1e-5)
    # must still move every parameter in two steps.
    cfg.param_scheduler = None
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    class Snapshot(Hook):
        """The backbone's parameters after initialisation, before the first step."""

        def before_train(self, runner):
            self.params = {n: p.detach().clone()
                           for n, p in runner.model.backbone.named_parameters()}

    runner = Runner.from_cfg(cfg)
    snapshot = Snapshot()
    runner.register_hook(snapshot)
    runner.train()
    before = snapshot.params
    log = _log(str(tmp_path))
    assert 'Epoch(train) [1][2/2]' in log and 'accuracy/top1' in log and 'gaug/l1_amp' in log
    assert osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
    after = dict(runner.model.backbone.named_parameters())
    frozen = [n for n in before if torch.equal(before[n], after[n].detach())]
    assert not frozen, frozen


@pytest.mark.slow
def test_locat_swin_upernet_trains(synthetic, tmp_path):
    """The UperNet config's model (mmseg interface) and optimizer, shrunk, on the synthetic
    segmentation data through the demo config's data and runtime."""
    from locat_mm.datasets import SEG_CLASSES
    swin = load('locat_swin_t_upernet_ade20k')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'locat_vit_demo_upernet_synthetic.py'))
    model = swin.model
    model.data_preprocessor = cfg.model.data_preprocessor
    model.backbone.update(init_cfg=None, window_size=4, **TINY_SWIN)
    bn = dict(type='BN', requires_grad=True)
    model.decode_head.update(in_channels=[16, 32, 64, 128], channels=16, norm_cfg=bn,
                             num_classes=len(SEG_CLASSES))
    model.auxiliary_head.update(in_channels=64, channels=8, norm_cfg=bn,
                                num_classes=len(SEG_CLASSES))
    cfg.model = model
    cfg.optim_wrapper = swin.optim_wrapper
    cfg.work_dir = str(tmp_path)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = synthetic[1]
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=3)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    cfg.custom_hooks = [dict(type='GAugStatsHook', interval=1)]
    runner = _train(cfg)
    log = _log(str(tmp_path))
    assert 'Iter(train) [3/3]' in log and 'mIoU' in log and 'gaug/l0_amp' in log
    assert osp.isfile(osp.join(str(tmp_path), 'iter_3.pth'))
    assert runner.model.backbone.stages[3].blocks[1].attn.w_msa.gaug is not None
