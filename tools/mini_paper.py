"""The paper's claim in miniature: ViT vs LocAtViT, same pretraining, frozen linear probe.

    python tools/mini_paper.py --work-dir DIR [--seeds 0 1 2] [--workers N]

For each seed and each model (the plain ViT and LocAtViT, same small arch and recipe):

1. image-level pretraining with MMPretrain on the synthetic shape-classification set
   (``configs/mini_paper/{vit,locat_vit}_mini_cls.py``: the label is the shape of the largest
   object) -> top-1 on its validation split;
2. the paper's frozen linear probe with MMSegmentation on the synthetic segmentation set
   (``configs/mini_paper/{vit,locat_vit}_mini_linear.py``: ``LinearSegHead`` on the last block
   before the final norm, backbone frozen, loaded through ``init_cfg``) -> mIoU.

Both datasets are written once into ``DIR/data``. Runs go to ``DIR/seed{S}/{model}_{cls,probe}``
(output in ``DIR/seed{S}/{model}.out``); ``N`` runs go at a time, each in its own process
(this script with ``--run MODEL SEED``) of ``cpu_count // N`` threads: these small models
use one core better than two threads.
Writes ``DIR/results.json`` (``{"runs": [{"model", "seed", "top1", "miou"}, ...],
"minutes"}``), prints a table with the mean and spread over seeds, and draws ``DIR/mini_paper.png``:
for a few validation images of the first seed, both probes' predictions side by side, and
LocAtViT's GAug variance, GAug bias and attention maps (``tools/analysis/visualize_locat.py``)
next to the ViT's attention.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from locat_mm.datasets import (SEG_PALETTE, make_synthetic_classification,  # noqa: E402
                               make_synthetic_segmentation, synthetic_dataset_ready)

MODELS = ('locat', 'vit')
LABELS = {'vit': 'ViT', 'locat': 'LocAtViT'}
CONFIG_NAMES = {'vit': 'vit', 'locat': 'locat_vit'}
#: Defaults of the two datasets (the data seed is fixed: seeds vary the training only).
CLS_DATA = dict(num_train=12000, num_val=600, size=64, distractors=2, fill='flat', seed=0)
SEG_DATA = dict(num_train=2000, num_val=300, size=64, fill='flat', seed=0)


def config_path(model: str, stage: str) -> str:
    """``configs/mini_paper/<model>_mini_<stage>.py``, stage ``'cls'`` or ``'linear'``."""
    return osp.join(REPO, 'configs', 'mini_paper', f'{CONFIG_NAMES[model]}_mini_{stage}.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1),
                        help='runs at a time, in separate processes (default: 2)')
    parser.add_argument('--cls-iters', type=int, help="pretraining iterations (default: the "
                        "config's)")
    parser.add_argument('--probe-iters', type=int, help="probe iterations (default: the "
                        "config's)")
    parser.add_argument('--cls-images', type=int, nargs=2, metavar=('TRAIN', 'VAL'),
                        default=[CLS_DATA['num_train'], CLS_DATA['num_val']])
    parser.add_argument('--seg-images', type=int, nargs=2, metavar=('TRAIN', 'VAL'),
                        default=[SEG_DATA['num_train'], SEG_DATA['num_val']])
    parser.add_argument('--num-vis', type=int, default=4, help='validation images in the PNG')
    # Internal: one model and seed in this process (what the parent starts per run).
    parser.add_argument('--run', nargs=2, metavar=('MODEL', 'SEED'), help=argparse.SUPPRESS)
    parser.add_argument('--threads', type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def prepare_data(work_dir: str, cls_images: Sequence[int],
                 seg_images: Sequence[int]) -> Tuple[str, str]:
    """Writes both datasets under ``work_dir/data`` unless complete ones are there."""
    roots = []
    for kind, make, params, (num_train, num_val) in (
            ('cls', make_synthetic_classification, CLS_DATA, cls_images),
            ('seg', make_synthetic_segmentation, SEG_DATA, seg_images)):
        root = osp.join(work_dir, 'data', kind)
        params = dict(params, num_train=num_train, num_val=num_val)
        if not synthetic_dataset_ready(root, kind=kind, **params):
            make(root, **params)
        roots.append(root)
    return roots[0], roots[1]


def _schedule_options(iters: Optional[int], warmup_fraction: float) -> Dict[str, object]:
    """Overrides that shorten a run to ``iters`` iterations, warm-up scaled with it."""
    from locat_mm import launch
    if not iters:
        return {}
    return launch.run_length_options(iters, max(1, int(iters * warmup_fraction)))


def _train(config: str, options: Dict[str, object], work_dir: str):
    """Builds the config's Runner (mmengine) with ``options`` and trains it; returns it."""
    from locat_mm import launch
    name = osp.relpath(work_dir, osp.dirname(osp.dirname(work_dir)))
    # A unique experiment and visualizer name: mmengine keeps them by name per process.
    options = dict(options, experiment_name=name.replace(os.sep, '_'), **{
        'visualizer.name': work_dir})
    cfg = launch.load_config(config, options, work_dir, 'none')
    box = launch.toolbox(cfg)
    launch.configure_dataloaders(cfg, launch.DATALOADERS, box == 'mmpretrain')
    if box == 'mmseg':
        from locat_mm.seg.checks import validate_config
        validate_config(cfg)
    runner = launch.build_runner(cfg)
    runner.train()
    return runner, cfg


def _last_val(runner, key: str) -> float:
    return float(runner.message_hub.get_scalar(f'val/{key}').current())


def _probe_predictions(runner, num: int) -> Dict[str, np.ndarray]:
    """The trained probe's predictions on the first ``num`` validation images."""
    import torch
    from mmengine.dataset import pseudo_collate
    dataset = runner.val_dataloader.dataset
    model = runner.model.eval()
    images, labels, preds, paths = [], [], [], []
    with torch.no_grad():
        for index in range(min(num, len(dataset))):
            sample = dataset[index]
            result = model.test_step(pseudo_collate([sample]))[0]
            images.append(sample['inputs'].numpy()[::-1].transpose(1, 2, 0))  # BGR -> RGB
            labels.append(result.gt_sem_seg.data[0].numpy())
            preds.append(result.pred_sem_seg.data[0].numpy())
            paths.append(result.img_path)
    return dict(images=np.stack(images), labels=np.stack(labels), preds=np.stack(preds),
                paths=np.array(paths))


def run_model(model: str, seed: int, work_dir: str, cls_root: str, seg_root: str,
              cls_iters: Optional[int], probe_iters: Optional[int], num_vis: int) -> dict:
    """Pretrains one model, probes it, saves the probe's predictions of ``num_vis``
    validation images; returns its row of results."""
    run_dir = osp.join(work_dir, f'seed{seed}')
    start = time.time()
    data = {f'{loader}.dataset.data_root': cls_root
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    cls_dir = osp.join(run_dir, f'{model}_cls')
    runner, cfg = _train(config_path(model, 'cls'),
                         dict(data, **_schedule_options(cls_iters, 0.1),
                              **{'randomness.seed': seed}), cls_dir)
    top1 = _last_val(runner, 'accuracy/top1')
    checkpoint = osp.join(cls_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    del runner

    data = {key: seg_root for key in data}
    runner, _ = _train(config_path(model, 'linear'),
                       dict(data, **_schedule_options(probe_iters, 0.25),
                            **{'randomness.seed': seed,
                               'model.backbone.init_cfg.checkpoint': checkpoint}),
                       osp.join(run_dir, f'{model}_probe'))
    miou = _last_val(runner, 'mIoU')
    np.savez(osp.join(run_dir, f'{model}_probe_predictions.npz'),
             **_probe_predictions(runner, num_vis))
    return dict(model=model, seed=seed, top1=top1, miou=miou, checkpoint=checkpoint,
                minutes=(time.time() - start) / 60)


def summarise(runs: List[dict]) -> str:
    """The results table: one line per run, then mean +- spread (sample std) per model."""
    lines = [f'{"model":<10}{"seed":>6}{"top-1":>9}{"mIoU":>9}']
    for run in sorted(runs, key=lambda r: (r['seed'], MODELS.index(r['model']))):
        lines.append(f'{LABELS[run["model"]]:<10}{run["seed"]:>6}{run["top1"]:>9.2f}'
                     f'{run["miou"]:>9.2f}')
    for model in MODELS[::-1]:
        mine = [r for r in runs if r['model'] == model]
        if not mine:
            continue
        cells = []
        for key in ('top1', 'miou'):
            values = np.array([r[key] for r in mine])
            spread = f'{values.std(ddof=1):.2f}' if len(values) > 1 else '-'
            cells.append(f'{values.mean():.2f} +- {spread}')
        lines.append(f'{LABELS[model]:<10}{"mean":>6}  top-1 {cells[0]}  mIoU {cells[1]}'
                     f'  ({len(mine)} seeds)')
    return '\n'.join(lines)


def _visualize_locat():
    spec = importlib.util.spec_from_file_location(
        'visualize_locat', osp.join(REPO, 'tools', 'analysis', 'visualize_locat.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _variance_map(model, inputs, layer_index: int) -> np.ndarray:
    """LocAtViT's GAug variance per query patch (H, W) in one layer: the mean over heads of
    the geometric mean of the row and column variances (patches squared)."""
    import torch
    from locat_mm.engine.hooks import AttentionProbe, attention_layers
    layer = attention_layers(model)[layer_index]
    found = {}

    def record(index, module, q, k, grid, num_prefix):
        var, _ = module.gaug(q[:1], grid, num_prefix)
        found['map'] = var.prod(-1).sqrt().mean(1)[0].reshape(grid).cpu().numpy()

    with AttentionProbe([layer], record), torch.no_grad():
        model.extract_feat(inputs)
    return found['map']


def _largest_object_patch(label: np.ndarray, patch: int) -> Tuple[int, int]:
    """Patch (y, x) at the centroid of the image's largest object class (background if none)."""
    counts = np.bincount(label.ravel(), minlength=len(SEG_PALETTE))
    counts[0] = 0
    ys, xs = np.nonzero(label == counts.argmax()) if counts.any() else np.nonzero(label >= 0)
    return int(ys.mean()) // patch, int(xs.mean()) // patch


def draw_figure(work_dir: str, seed: int, checkpoints: Dict[str, str], out: str) -> None:
    """Both probes' predictions and LocAtViT's GAug maps for the first seed's images."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    vis = _visualize_locat()
    preds = {m: np.load(osp.join(work_dir, f'seed{seed}', f'{m}_probe_predictions.npz'))
             for m in MODELS}
    classifiers = {m: vis.load_classifier(config_path(m, 'cls'), checkpoints[m]) for m in MODELS}
    palette = np.array(SEG_PALETTE, dtype=np.uint8)
    last = classifiers['locat'].backbone.num_layers - 1
    patch = classifiers['locat'].backbone.patch_size
    titles = ['image', 'ground truth', 'ViT probe', 'LocAtViT probe', 'LocAtViT GAug variance',
              'LocAtViT GAug bias', 'LocAtViT attention', 'ViT attention']
    rows = len(preds['locat']['images'])
    fig, axes = plt.subplots(rows, len(titles), figsize=(1.6 * len(titles), 1.6 * rows),
                             dpi=100, squeeze=False)
    for r in range(rows):
        image, label = preds['locat']['images'][r], preds['locat']['labels'][r]
        query = _largest_object_patch(label, patch)
        maps = {}
        for m, model in classifiers.items():
            inputs = vis.load_image(str(preds[m]['paths'][r]), label.shape[:2], model)
            maps[m] = vis.collect_maps(model, inputs, [query], [last])[last][0]
            if m == 'locat':
                variance = _variance_map(model, inputs, last)
        panels = [image, palette[label], palette[preds['vit']['preds'][r]],
                  palette[preds['locat']['preds'][r]], variance, maps['locat'][0],
                  maps['locat'][1], maps['vit'][1]]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(panel, cmap='viridis' if panel.ndim == 2 else None)
            if c >= 5:
                ax.plot([query[1]], [query[0]], 'r.', markersize=6)
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
    fig.suptitle(f'Frozen linear probes and layer-{last + 1} maps (seed {seed}; red dot: the '
                 'query patch)', fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.05, hspace=0.05)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _run_in_subprocess(args: argparse.Namespace, work_dir: str, model: str, seed: int,
                       threads: int) -> dict:
    """Runs ``run_model`` in a fresh process of ``threads`` threads; returns its row."""
    run_dir = osp.join(work_dir, f'seed{seed}')
    os.makedirs(run_dir, exist_ok=True)
    command = [sys.executable, osp.abspath(__file__), '--work-dir', work_dir,
               '--run', model, str(seed), '--threads', str(threads), '--num-vis',
               str(args.num_vis), '--cls-images', *map(str, args.cls_images),
               '--seg-images', *map(str, args.seg_images)]
    for name in ('cls_iters', 'probe_iters'):
        if getattr(args, name):
            command += ['--' + name.replace('_', '-'), str(getattr(args, name))]
    log = osp.join(run_dir, f'{model}.out')
    with open(log, 'w') as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    if code:
        raise RuntimeError(f'The {LABELS[model]} run of seed {seed} failed (exit code {code}); '
                           f'its output is in {log}')
    with open(osp.join(run_dir, f'{model}_result.json')) as f:
        return json.load(f)


def write_results(work_dir: str, runs: List[dict], start: float) -> dict:
    """Writes ``results.json`` for the runs so far; returns its content."""
    results = dict(runs=[{key: r[key] for key in ('model', 'seed', 'top1', 'miou')}
                         for r in runs],
                   minutes=round((time.time() - start) / 60, 2))
    with open(osp.join(work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    return results


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Runs the comparison; returns what it writes to results.json."""
    args = parse_args(argv)
    start = time.time()
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    cls_root, seg_root = prepare_data(work_dir, args.cls_images, args.seg_images)
    if args.run:
        import torch
        torch.set_num_threads(args.threads)
        model, seed = args.run[0], int(args.run[1])
        run = run_model(model, seed, work_dir, cls_root, seg_root, args.cls_iters,
                        args.probe_iters, args.num_vis)
        with open(osp.join(work_dir, f'seed{seed}', f'{model}_result.json'), 'w') as f:
            json.dump(run, f)
        return run
    print(f'Data: {cls_root} and {seg_root} ({(time.time() - start) / 60:.1f} min)', flush=True)

    jobs = [(model, seed) for seed in args.seeds for model in MODELS]
    workers = max(1, min(args.workers, len(jobs)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    runs = []
    first = args.seeds[0]
    figure = osp.join(work_dir, 'mini_paper.png')
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_run_in_subprocess, args, work_dir, model, seed, threads)
                   for model, seed in jobs]
        for future in futures:
            run = future.result()
            runs.append(run)
            print(f'seed {run["seed"]} {LABELS[run["model"]]}: top-1 {run["top1"]:.2f}, '
                  f'mIoU {run["miou"]:.2f} ({run["minutes"]:.1f} min; log in '
                  f'{osp.join(work_dir, "seed%d" % run["seed"])})', flush=True)
            # Written after every run, so an interrupted comparison keeps what finished.
            results = write_results(work_dir, runs, start)
            first_runs = {r['model']: r['checkpoint'] for r in runs if r['seed'] == first}
            if run['seed'] == first and len(first_runs) == len(MODELS):
                draw_figure(work_dir, first, first_runs, figure)
    results = write_results(work_dir, runs, start)
    print('\n' + summarise(runs))
    print(f'\n{len(runs)} runs in {results["minutes"]:.1f} min ({workers} at a time, '
          f'{threads} thread(s) each)')
    print(f'  results: {osp.join(work_dir, "results.json")}')
    print(f'  figure:  {figure}')
    return results


if __name__ == '__main__':
    main()
