"""Writes the synthetic datasets: ``seg`` (ADE20K layout) or ``cls`` (ImageNet layout).

    python tools/dataset_converters/make_synthetic.py seg data/synthetic_seg
    python tools/dataset_converters/make_synthetic.py cls data/synthetic_cls --num-train 1200

Same arguments, same bytes. See ``locat_mm.datasets`` for the content. OUT must be new, empty
or a previous synthetic set, which is then replaced as a whole; a folder with other files in
it is refused.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from locat_mm.datasets import (FILLS, make_synthetic_classification,  # noqa: E402
                               make_synthetic_segmentation)

DEFAULTS = {'seg': dict(num_train=400, num_val=60, size=96),
            'cls': dict(num_train=600, num_val=120, size=64)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('kind', choices=sorted(DEFAULTS), help='seg or cls')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--num-train', type=int, help='training images (default: seg 400, '
                        'cls 600)')
    parser.add_argument('--num-val', type=int, help='validation images (default: seg 60, '
                        'cls 120)')
    parser.add_argument('--size', type=int, help='image side (default: seg 96, cls 64)')
    parser.add_argument('--fill', choices=FILLS, default='patterned',
                        help='objects patterned (hard) or flat and light on a darker '
                        'background (what tools/demo.py and tools/mini_paper.py use)')
    parser.add_argument('--distractors', type=int,
                        help='cls only: up to N small objects besides the labelled largest one')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.distractors is not None and args.kind != 'cls':
        raise SystemExit('--distractors applies to the cls dataset only')
    kwargs = dict(DEFAULTS[args.kind], seed=args.seed, fill=args.fill)
    for key in ('num_train', 'num_val', 'size', 'distractors'):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    start = time.time()
    make = make_synthetic_segmentation if args.kind == 'seg' else make_synthetic_classification
    try:
        make(args.out, **kwargs)
    except FileExistsError as err:  # a folder with other files: the message says what to do
        raise SystemExit(str(err)) from err
    print(f'Wrote {args.kind} dataset ({kwargs["num_train"]} train, {kwargs["num_val"]} val, '
          f'{kwargs["size"]}px) to {args.out} in {time.time() - start:.1f}s')


if __name__ == '__main__':
    main()
