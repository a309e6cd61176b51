"""Train a segmentor (MMSegmentation config) or a classifier (MMPretrain config).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
                          [--trust-checkpoint]

The arguments are the union of mmseg's and mmpretrain's ``tools/train.py``; the toolbox comes
from the config's ``default_scope``. Before anything is written, MMSegmentation setups are
checked (data root, annotations, crop size, class counts; ``locat_mm.seg.checks``). Without
CUDA, ``--launcher pytorch`` (``tools/dist_train.sh``) trains on CPU processes with gloo.
Checkpoints (``--resume``, ``load_from``, ``init_cfg``) are read with ``weights_only=True``;
``--trust-checkpoint`` reads ones that need more (``locat_mm/checkpoint.py``).
"""
import argparse

from locat_mm import launch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (mmseg or mmpretrain config)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', const='auto',
        help='resume from CHECKPOINT, or without a value from the latest checkpoint in the '
        'work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed-precision training')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual / the config\'s base batch size')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in dataloaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='disable persistent_workers in dataloaders')
    return launch.parse_common_args(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = launch.load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    box = launch.toolbox(cfg)
    launch.set_resume(cfg, args.resume)
    if args.amp:
        launch.enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    launch.configure_dataloaders(cfg, launch.DATALOADERS, box == 'mmpretrain',
                                 not args.no_pin_memory, not args.no_persistent_workers)
    launch.adapt_for_cpu_distributed(cfg)
    if box == 'mmseg':
        # Before the Runner exists: a bad setup must not leave a half-written work dir.
        from locat_mm.seg.checks import validate_config
        validate_config(cfg)
    launch.build_runner(cfg).train()


if __name__ == '__main__':
    main()
