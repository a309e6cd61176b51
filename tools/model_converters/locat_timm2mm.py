"""Convert an authors' LocAtViT/ViT checkpoint (timm layout) to this project's classifier layout.

    python tools/model_converters/locat_timm2mm.py SRC.pth DST.pth

DST holds ``{'state_dict': ..., 'meta': ...}`` with keys ``backbone.*`` and
``head.layers.head.*``: an mmpretrain ``ImageClassifier`` (``LocAtViT`` backbone,
``VisionTransformerClsHead``) such as ``configs/locat_vit_b_in1k.py`` loads it with
``tools/test.py CONFIG DST.pth``; segmentation configs read its backbone through
``init_cfg=dict(type='Pretrained', checkpoint=DST.pth)``.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from typing import Dict

import torch
from torch import Tensor

from locat_mm.models.utils.checkpoint import convert_timm_classifier, unwrap_state_dict


def classifier_meta(state_dict: Dict[str, Tensor], source: str) -> dict:
    """What a config needs to know about a converted checkpoint (read from the tensors).

    Args:
        state_dict (dict[str, Tensor]): The converted state dict.
        source (str): Path of the original checkpoint.

    Returns:
        dict: source, GAug present, width, depth, number of classes.
    """
    layers = {k.split('.')[2] for k in state_dict if k.startswith('backbone.layers.')}
    head = state_dict.get('head.layers.head.weight')
    return dict(
        source=osp.abspath(source),
        converter='tools/model_converters/locat_timm2mm.py',
        gaug=any('.attn.gaug.' in k for k in state_dict),
        embed_dims=int(state_dict['backbone.patch_embed.projection.weight'].shape[0]),
        num_layers=len(layers),
        num_classes=None if head is None else int(head.shape[0]))


def convert_file(src: str, dst: str) -> dict:
    """Reads ``src``, converts it and writes ``dst`` atomically; returns the meta dict.

    Raises:
        ValueError: ``dst`` is ``src``, or ``src`` is not a timm-layout LocAtViT/ViT.
    """
    if osp.exists(dst) and osp.samefile(src, dst):
        raise ValueError(f'refusing to overwrite the source checkpoint {src}: pick another DST')
    raw = torch.load(src, map_location='cpu', weights_only=False)
    state_dict = convert_timm_classifier(unwrap_state_dict(raw))
    meta = classifier_meta(state_dict, src)
    out_dir = osp.dirname(osp.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    # Written next to DST and renamed, so an interrupted run never leaves a truncated DST.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix='.locat_timm2mm_', suffix='.pth')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save({'state_dict': state_dict, 'meta': meta}, f)
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help="authors' checkpoint (timm layout)")
    parser.add_argument('dst', help='where to save the converted checkpoint')
    args = parser.parse_args()
    try:
        meta = convert_file(args.src, args.dst)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'saved {args.dst}: {meta}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
