"""Convert an authors' LocAtSwin/Swin checkpoint (timm layout) to this project's classifier layout.

    python tools/model_converters/locat_swin_timm2mm.py SRC.pth DST.pth

DST holds ``{'state_dict': ..., 'meta': ...}`` with keys ``backbone.*`` and ``head.fc.*``: an
mmpretrain ``ImageClassifier`` (``LocAtSwin`` backbone, ``GlobalAveragePooling``,
``LinearClsHead``) such as ``configs/locat_swin_t_in1k.py`` loads it with
``tools/test.py CONFIG DST.pth``; segmentation configs read its backbone through
``init_cfg=dict(type='Pretrained', checkpoint=DST.pth)`` (which also reads SRC directly). SRC may
also name a release on the Hugging Face hub, ``hf-hub:<repo>[@<revision>]`` (``locat_mm/hub.py``).
"""
import argparse
import sys

from locat_mm.hub import HubCheckpointError
from locat_mm.models.swin_ckpt_convert import convert_timm_swin_classifier_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help="authors' checkpoint (timm layout), or hf-hub:<repo>[@<rev>]")
    parser.add_argument('dst', help='where to save the converted checkpoint')
    args = parser.parse_args(argv)
    try:
        meta = convert_timm_swin_classifier_file(args.src, args.dst)
    except (ValueError, HubCheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'saved {args.dst}: {meta}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
