"""Cost of LocAtViT against the plain ViT: training-step time and memory, inference time.

For each arch and image size, three backbones with the same arch are built:

- ``vit``: ``LocAtViT(gaug=False, prr=False)``, the plain ViT baseline (fused SDPA attention);
- ``locat``: LocAtViT with GAug and PRR through the fast path (``--gaug-impl``, default
  ``auto``: the registered operator with fused C++ passes on the CPU, FlexAttention on CUDA);
- ``dense``: the same LocAtViT with ``gaug_impl='dense'``, the formula as written (the
  oracle), so that the fast path's gain over it shows.

Measured, per backbone:

- training step: ``model.train()``, forward, ``loss = cls_output.square().mean()``,
  backward (gradients are cleared before each step, outside the timed region; no optimizer);
- inference: ``model.eval()`` forward under ``torch.no_grad()``;
- peak training memory: the largest number of bytes held by live tensors during one
  training step, above what was live before it (weights, inputs). On CUDA this is
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. On CPU the step runs
  once under ``torch.profiler`` with ``profile_memory=True``, which records every allocation
  and free of PyTorch's CPU allocator; the peak of their running sum is the same quantity as
  on CUDA. Unlike process RSS it does not depend on how malloc caches freed memory (a
  high-water mark of RSS counts fragmentation and pages malloc keeps, and a warm-up step has
  already raised it). It leaves out memory that libraries allocate themselves (BLAS scratch
  space, a few MiB) and Python objects.

``--amp bf16|fp16`` runs forward and loss under autocast (the backward follows it), as
mixed-precision training does. Batch sizes default to realistic ones per device (CPU 8 at 224
px, 2 above; CUDA 128 at 224, 8 above, as ``locat_vit_b_in1k`` trains); images/s are reported
for the fast LocAtViT and the ViT.

Timings: ``--warmup`` untimed steps, then ``--repeats`` timed ones, the backbones interleaved
(vit, locat, dense, vit, locat, dense, ...) so that machine noise hits all alike; the median
is reported. Ratios are LocAtViT over ViT; ``dense_speedup`` is dense over fast training time.

Example::

    python tools/benchmark.py --arch tiny base --img-size 224 512 --json bench.json
"""
import argparse
import json
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from locat_mm import LocAtViT

DEFAULT_BATCH = {'cpu': {224: 8}, 'cuda': {224: 128}}
FALLBACK_BATCH = {'cpu': 2, 'cuda': 8}
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
VARIANTS = ('vit', 'locat', 'dense')
MIB = float(1 << 20)


def parse_arch(spec: str) -> Tuple[str, object]:
    """``--arch`` entry -> (label, ``LocAtViT`` arch): a zoo name or a JSON dict.

    A dict (``{"embed_dims": 32, "num_layers": 2, "num_heads": 2,
    "feedforward_channels": 64}``) gives a small model, for tests.
    """
    if not spec.lstrip().startswith('{'):
        return spec, spec
    arch = json.loads(spec)
    label = 'd{embed_dims}-L{num_layers}-h{num_heads}'.format(**arch)
    return label, arch


def batch_sizes(img_sizes: Sequence[int], given: Optional[Sequence[int]],
                device: str = 'cpu') -> List[int]:
    """One batch size per image size: the device's defaults, one value for all, or one per
    size."""
    if not given:
        return [DEFAULT_BATCH[device].get(size, FALLBACK_BATCH[device]) for size in img_sizes]
    if len(given) == 1:
        return list(given) * len(img_sizes)
    if len(given) != len(img_sizes):
        raise ValueError(f'--batch-size takes one value or one per --img-size '
                         f'({len(img_sizes)}), got {len(given)}')
    return list(given)


def build_backbones(arch: object, img_size: int, gaug_impl: str,
                    device: torch.device) -> Dict[str, nn.Module]:
    """The three backbones of one configuration; ``locat`` and ``dense`` share weights."""
    torch.manual_seed(0)
    models = {
        'vit': LocAtViT(arch, img_size=img_size, gaug=False, prr=False),
        'locat': LocAtViT(arch, img_size=img_size, gaug_impl=gaug_impl),
        'dense': LocAtViT(arch, img_size=img_size, gaug_impl='dense'),
    }
    models['dense'].load_state_dict(models['locat'].state_dict())
    return {name: model.to(device) for name, model in models.items()}


def _autocast(images: torch.Tensor, amp: Optional[str]):
    return torch.autocast(images.device.type, dtype=AMP_DTYPES[amp] if amp else None,
                          enabled=amp is not None)


def train_step(model: nn.Module, images: torch.Tensor,
               amp: Optional[str] = None) -> Callable[[], None]:
    """One forward + backward of a simple loss on the class-token output."""

    def step() -> None:
        model.train()
        with _autocast(images, amp):
            (cls_out,) = model(images)
            loss = cls_out.float().square().mean()
        loss.backward()

    return step


def infer_step(model: nn.Module, images: torch.Tensor,
               amp: Optional[str] = None) -> Callable[[], None]:
    """One evaluation forward without autograd."""

    def step() -> None:
        model.eval()
        with torch.no_grad(), _autocast(images, amp):
            model(images)

    return step


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _clear_grads(models: Dict[str, nn.Module]) -> None:
    for model in models.values():
        model.zero_grad(set_to_none=True)


def time_interleaved(steps: Dict[str, Callable[[], None]], models: Dict[str, nn.Module],
                     repeats: int, warmup: int, device: torch.device) -> Dict[str, float]:
    """Median seconds per step of each backbone, the backbones' steps interleaved."""
    times = {name: [] for name in steps}
    for index in range(warmup + repeats):
        for name, step in steps.items():
            _clear_grads(models)
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            if index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _cpu_peak_bytes(step: Callable[[], None]) -> int:
    """Peak of live CPU-allocator bytes during ``step`` above the level before it."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]' and e.device_type() == DeviceType.CPU),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak


def peak_step_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Peak bytes of live tensors during ``step`` above those live before it."""
    if device.type != 'cuda':
        return _cpu_peak_bytes(step)
    _sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) - before


def benchmark_config(label: str, arch: object, img_size: int, batch_size: int,
                     args: argparse.Namespace, device: torch.device) -> dict:
    """Times and memories of the three backbones at one arch, image size and batch."""
    models = build_backbones(arch, img_size, args.gaug_impl, device)
    images = torch.randn(batch_size, 3, img_size, img_size, device=device)
    train = {name: train_step(model, images, args.amp) for name, model in models.items()}
    infer = {name: infer_step(model, images, args.amp) for name, model in models.items()}
    train_time = time_interleaved(train, models, args.repeats, args.warmup, device)
    infer_time = time_interleaved(infer, models, args.repeats, args.warmup, device)
    memory = {}
    for name, step in train.items():
        _clear_grads(models)
        memory[name] = peak_step_bytes(step, device) / MIB
    side = -(-img_size // models['vit'].patch_size)  # inputs are padded to the patch
    return dict(
        arch=label,
        img_size=img_size,
        batch_size=batch_size,
        grid=[side, side],
        train_time_s=train_time,
        infer_time_s=infer_time,
        train_memory_mib=memory,
        train_time_ratio=train_time['locat'] / train_time['vit'],
        infer_time_ratio=infer_time['locat'] / infer_time['vit'],
        train_memory_ratio=memory['locat'] / memory['vit'],
        dense_speedup=train_time['dense'] / train_time['locat'],
        train_images_per_s={name: batch_size / t for name, t in train_time.items()},
        infer_images_per_s={name: batch_size / t for name, t in infer_time.items()},
    )


def format_table(rows: Sequence[dict]) -> str:
    """The results as a fixed-width text table, one line per arch and image size."""
    header = ('arch', 'img', 'batch', 'train ms vit', 'locat', 'dense', 'infer ms vit', 'locat',
              'dense', 'train MiB vit', 'locat', 'dense', 'train x', 'infer x', 'mem x',
              'dense/fast', 'train img/s vit', 'locat', 'infer img/s vit', 'locat')
    lines = [header]
    for row in rows:
        cells = [row['arch'], str(row['img_size']), str(row['batch_size'])]
        for key, scale in (('train_time_s', 1e3), ('infer_time_s', 1e3), ('train_memory_mib', 1)):
            cells += [f'{row[key][name] * scale:.1f}' for name in VARIANTS]
        cells += [
            f"{row[key]:.3f}"
            for key in ('train_time_ratio', 'infer_time_ratio', 'train_memory_ratio',
                        'dense_speedup')
        ]
        for key in ('train_images_per_s', 'infer_images_per_s'):
            cells += [f'{row[key][name]:.1f}' for name in ('vit', 'locat')]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return '\n'.join('  '.join(cell.rjust(width) for cell, width in zip(line, widths))
                     for line in lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Training-step time and memory and inference time of LocAtViT against '
        'the plain ViT (and the dense GAug formulation).')
    parser.add_argument(
        '--arch', nargs='+', default=['tiny', 'base'],
        help='LocAtViT arch names, or JSON dicts of a custom arch (default: tiny base)')
    parser.add_argument(
        '--img-size', nargs='+', type=int, default=[224, 512], help='default: 224 512')
    parser.add_argument(
        '--batch-size', nargs='+', type=int,
        help='one value, or one per --img-size (default: CPU 8 at 224, 2 otherwise; CUDA 128 '
        'at 224, 8 otherwise)')
    parser.add_argument(
        '--device', choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--gaug-impl', choices=['auto', 'factored', 'flex'], default='auto',
        help='GAug path of the measured LocAtViT (the dense one is always measured too)')
    parser.add_argument(
        '--amp', choices=sorted(AMP_DTYPES), help='autocast dtype (default: float32)')
    parser.add_argument(
        '--threads', type=int,
        help='CPU threads (torch.set_num_threads); default: torch\'s. On a machine shared '
        'with other jobs, 1 thread gives the steadiest ratios')
    parser.add_argument('--repeats', type=int, default=5, help='timed steps per backbone')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per backbone')
    parser.add_argument('--json', metavar='FILE', help='also write the results as JSON')
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    try:
        args.batch_size = batch_sizes(args.img_size, args.batch_size, args.device)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Runs the benchmark, prints the table, writes ``--json``; returns the JSON document."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for spec in args.arch:
        label, arch = parse_arch(spec)
        for img_size, batch_size in zip(args.img_size, args.batch_size):
            row = benchmark_config(label, arch, img_size, batch_size, args, device)
            rows.append(row)
            print(f"done: {label} {img_size}px batch {batch_size}: train x "
                  f"{row['train_time_ratio']:.3f}, mem x {row['train_memory_ratio']:.3f}",
                  file=sys.stderr)
    report = dict(
        device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        gaug_impl=args.gaug_impl,
        amp=args.amp,
        repeats=args.repeats,
        warmup=args.warmup,
        results=rows)
    print(f"device {report['device']}, torch {report['torch']}, {report['threads']} threads, "
          f'fast path {args.gaug_impl}, amp {args.amp or "off"}, median of {args.repeats} after '
          f'{args.warmup} warm-up')
    print(format_table(rows))
    print('train x / infer x / mem x: LocAtViT over ViT; dense/fast: dense over fast '
          'training-step time')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == '__main__':
    main()
