"""A Hugging Face hub cache on disk, laid out as ``huggingface_hub`` keeps it, for offline tests.

``<cache>/models--<owner>--<name>/blobs/<sha256>`` holds the files,
``snapshots/<commit>/<file>`` links to them and ``refs/<branch or tag>`` names the commit, as
``hf download`` leaves them. The files are written as the authors' ``PyTorchModelHubMixin``
writes a release: ``config.json`` (the constructor's keyword arguments, sorted, indented) and
``model.safetensors`` (``{"format": "pt"}`` metadata).
"""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional

import torch


def mixin_config(**kwargs) -> dict:
    """``config.json`` of the authors' ``LocAtViT``: their keyword arguments plus the defaults
    of its own signature (the mixin stores both)."""
    return dict(dict(gaug=True, prr=True, no_pos_emb=False, store_metrics=True), **kwargs)


def write_release(cache: str, repo_id: str, files: Dict[str, bytes], commit: str,
                  refs: tuple = ('main', )) -> str:
    """Puts ``files`` (name -> bytes) into the cache as snapshot ``commit`` of ``repo_id``,
    pointed at by ``refs``; returns the snapshot folder."""
    repo = osp.join(cache, 'models--' + repo_id.replace('/', '--'))
    snapshot = osp.join(repo, 'snapshots', commit)
    os.makedirs(osp.join(repo, 'blobs'), exist_ok=True)
    os.makedirs(snapshot, exist_ok=True)
    os.makedirs(osp.join(repo, 'refs'), exist_ok=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        with open(osp.join(repo, 'blobs', blob), 'wb') as f:
            f.write(data)
        link = osp.join(snapshot, name)
        if osp.lexists(link):
            os.remove(link)
        os.symlink(osp.join('..', '..', 'blobs', blob), link)
    for ref in refs:
        with open(osp.join(repo, 'refs', ref), 'w') as f:
            f.write(commit)
    return snapshot


def release_files(state_dict: Dict[str, torch.Tensor], config: Optional[dict],
                  weights: str = 'model.safetensors') -> Dict[str, bytes]:
    """The bytes of a release as the mixin's ``save_pretrained`` writes them."""
    files = {}
    if config is not None:
        files['config.json'] = json.dumps(config, sort_keys=True, indent=2).encode()
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    if weights == 'model.safetensors':
        from safetensors.torch import save
        files[weights] = save(tensors, metadata={'format': 'pt'})
    else:
        import io
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        files[weights] = buffer.getvalue()
    return files


def commit_id(text: str) -> str:
    """A 40-hex commit id (as the hub's) derived from ``text``."""
    return hashlib.sha1(text.encode()).hexdigest()
