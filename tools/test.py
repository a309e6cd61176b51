"""Test (and evaluate) a checkpoint of an MMSegmentation or MMPretrain config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out OUT] [--show]
                         [--show-dir DIR] [--wait-time S] [--interval N] [--tta]
                         [--cfg-options k=v ...]
                         [--launcher {none,pytorch,slurm,mpi}] [--trust-checkpoint]

The toolbox comes from the config's ``default_scope`` and the options mean what they mean in
its own ``tools/test.py``: for mmseg, ``--out`` is a folder for the predicted label maps and
``--show-dir`` a folder for painted predictions; for mmpretrain, ``--out`` is a pickle file of
the predictions and ``--show-dir`` a folder for painted images. CHECKPOINT is read with
``weights_only=True``, once; ``--trust-checkpoint`` reads one that needs more
(``locat_mm/checkpoint.py``).
"""
import argparse
from copy import deepcopy

from mmengine.config import Config, ConfigDict

from locat_mm import launch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model (mmseg or mmpretrain config)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='mmseg: folder for predicted label maps; mmpretrain: '
                        'pickle file for the predictions')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--show-dir', help='folder to save painted predictions to')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each shown image stays (with --show)')
    parser.add_argument('--interval', type=int, default=1,
                        help='paint every n-th image (with --show/--show-dir)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    return launch.parse_common_args(parser, argv)


def _setup_mmseg(cfg: Config, args: argparse.Namespace) -> None:
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError("--show/--show-dir need default_hooks.visualization="
                               "dict(type='SegVisualizationHook') in the config.")
        hook.draw, hook.interval = True, args.interval
        if args.show:
            hook.show, hook.wait_time = True, args.wait_time
        if args.show_dir:
            cfg.visualizer.save_dir = args.show_dir
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if args.out is not None:
        cfg.test_evaluator.output_dir = args.out
        cfg.test_evaluator.keep_results = True
    # The test data and the checkpoint's head must fit, before anything is written.
    from locat_mm.seg.checks import validate_config
    validate_config(cfg, loaders=('test_dataloader', ))


def _setup_mmpretrain(cfg: Config, args: argparse.Namespace) -> None:
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError("--show/--show-dir need default_hooks.visualization="
                               "dict(type='VisualizationHook') in the config.")
        hook.enable, hook.show, hook.wait_time = True, args.show, args.wait_time
        hook.out_dir, hook.interval = args.show_dir, args.interval
    if args.tta:
        cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
        if 'tta_pipeline' not in cfg:
            # Flip test-time augmentation around the test pipeline's packing step.
            pipeline = deepcopy(cfg.test_dataloader.dataset.pipeline)
            pipeline[-1] = dict(type='TestTimeAug', transforms=[
                [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                [cfg.test_dataloader.dataset.pipeline[-1]]])
            cfg.tta_pipeline = pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    launch.configure_dataloaders(cfg, ['test_dataloader'], mmpretrain_defaults=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = launch.load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    box = launch.toolbox(cfg)
    cfg.load_from = args.checkpoint
    if box == 'mmpretrain':
        cfg.load_from = launch.classifier_checkpoint(args.checkpoint, cfg.work_dir)
    (_setup_mmseg if box == 'mmseg' else _setup_mmpretrain)(cfg, args)
    launch.adapt_for_cpu_distributed(cfg)
    runner = launch.build_runner(cfg)
    if box == 'mmpretrain' and args.out:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
