"""Convert an authors' LocAtViT/ViT checkpoint (timm layout) to this project's classifier layout.

    python tools/model_converters/locat_timm2mm.py SRC.pth DST.pth [--trust-checkpoint]
    python tools/model_converters/locat_timm2mm.py hf-hub:sinahmr/locatvit_base DST.pth

DST holds ``{'state_dict': ..., 'meta': ...}`` with keys ``backbone.*`` and
``head.layers.head.*``: an mmpretrain ``ImageClassifier`` (``LocAtViT`` backbone,
``VisionTransformerClsHead``) such as ``configs/locat_vit_b_in1k.py`` loads it with
``tools/test.py CONFIG DST.pth``; segmentation configs read its backbone through
``init_cfg=dict(type='Pretrained', checkpoint=DST.pth)``.

SRC is read with ``weights_only=True`` (``locat_mm.checkpoint``); ``--trust-checkpoint`` reads
a file that needs more, for sources you trust only.
"""
import argparse
import sys

from locat_mm.checkpoint import UntrustedCheckpointError, trust_checkpoints
from locat_mm.hub import HubCheckpointError
from locat_mm.models.ckpt_convert import convert_timm_classifier_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help="authors' checkpoint (timm layout), or hf-hub:<repo>[@<rev>]")
    parser.add_argument('dst', help='where to save the converted checkpoint')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='read SRC even if its pickle may run code (trusted sources only)')
    args = parser.parse_args()
    if args.trust_checkpoint:
        trust_checkpoints()
    try:
        meta = convert_timm_classifier_file(args.src, args.dst)
    except (ValueError, UntrustedCheckpointError, HubCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'saved {args.dst}: {meta}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
