"""The authors' released weights by name: ``hf-hub:<repo>[@<revision>]`` as a checkpoint.

The authors publish LocAtViT on the Hugging Face hub (``sinahmr/locatvit_tiny``,
``sinahmr/locatvit_base``). Their model class mixes in ``huggingface_hub.PyTorchModelHubMixin``,
so a release is two files: ``config.json``, the constructor's keyword arguments (``embed_dim``,
``depth``, ``num_heads``, ``patch_size``, ``gaug``, ``prr``, ``no_pos_emb``, ``reg_tokens``, ...),
and ``model.safetensors``, the timm-layout state dict of SPEC section 4 (older repositories:
``pytorch_model.bin``).

``import locat_mm`` registers ``hf-hub:`` as a scheme of mmengine's ``CheckpointLoader``
(:func:`register_scheme`), so the name works wherever mmengine reads a checkpoint: the
backbone's ``init_cfg`` ``Pretrained`` entry, ``load_from``, ``tools/test.py`` and
``mmpretrain.get_model(..., pretrained=...)``; the converters read it too
(:func:`read_release`). Files come through ``huggingface_hub``, so its cache, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT`` (mirrors) and ``HF_TOKEN`` apply; ``@<revision>`` pins a branch, tag or commit.
``model.safetensors`` is read with ``safetensors`` (no pickle); a ``pytorch_model.bin`` goes
through the project's safe loader (:mod:`locat_mm.checkpoint`).

The loaded state dict is in this project's classifier layout (``backbone.*``,
``head.layers.head.*``) and carries the release's architecture in its ``_metadata`` under the
backbone's entry (the channel torch gives a checkpoint to reach a module's load hooks), where
``LocAtViT`` compares it with itself (:func:`check_release_fits`): a release of another
architecture is an error naming each difference, never a half-loaded model.

Importing this module is cheap: ``huggingface_hub`` and ``safetensors`` are imported on first use.
"""
import json
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

HUB_PREFIX = 'hf-hub:'
# Key of the release's architecture in the backbone's ``_metadata`` entry of a state dict.
RELEASE_KEY = 'locat_mm.hf_hub_release'
# Where the backbone sits in the classifier layout the scheme returns.
BACKBONE = 'backbone'
# Weight files of a release, in the order they are looked for.
WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
_REPO_ID = re.compile(r'^[\w.-]+/[\w.-]+$')

# The authors' timm model names, for a ``config.json`` in timm's own format
# (``{"architecture": "locatvit_base", ...}``): their constructor arguments.
_VARIANTS = {
    'locatvit_tiny': dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    'locatvit_small': dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    'locatvit_base': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
}
# Facts that only change pooled (classification) outputs: dense features never see them.
_POOLED_ONLY = ('PRR', 'pooling')
_POOLED_OUT_TYPES = {'cls_token': 'token', 'avg_featmap': 'avg'}


class HubCheckpointError(RuntimeError):
    """A release that cannot be read: not in the cache offline, no such repo or revision, or
    no weight file."""


class ReleaseMismatchError(ValueError):
    """A release whose ``config.json`` describes another architecture than the model."""


class Release(NamedTuple):
    """One release as read from the hub: its name, its (timm-layout) tensors and config."""
    name: str
    state_dict: Dict[str, Tensor]
    config: Dict[str, Any]
    weights_file: str


def is_hub_name(name: Any) -> bool:
    """True for a checkpoint given as ``hf-hub:<repo>[@<revision>]``."""
    return isinstance(name, str) and name.startswith(HUB_PREFIX)


def parse_hub_name(name: str) -> Tuple[str, Optional[str]]:
    """``'hf-hub:owner/repo@rev'`` -> ``('owner/repo', 'rev')`` (revision None: the default
    branch).

    Raises:
        ValueError: Not of that form.
    """
    body = name[len(HUB_PREFIX):] if is_hub_name(name) else ''
    repo_id, at, revision = body.partition('@')
    if not _REPO_ID.match(repo_id) or (at and not revision):
        raise ValueError(f'{name!r} is not a hub checkpoint name: write '
                         'hf-hub:<owner>/<repo> or hf-hub:<owner>/<repo>@<revision>, e.g. '
                         'hf-hub:sinahmr/locatvit_base')
    return repo_id, revision or None


def _how_to_get(repo_id: str, revision: Optional[str]) -> str:
    pin = f' --revision {revision}' if revision else ''
    return (f'Download it where there is network with `hf download {repo_id}{pin}` (or '
            f'`huggingface_hub.snapshot_download("{repo_id}")`) and copy the hub cache '
            '(~/.cache/huggingface/hub, or $HF_HUB_CACHE) to this machine; set HF_HUB_CACHE '
            'to where it is. Online, unset HF_HUB_OFFLINE; behind a mirror, set HF_ENDPOINT; '
            'for a private repository, set HF_TOKEN.')


def _download(repo_id: str, filename: str, revision: Optional[str]) -> Optional[str]:
    """The local path of one file of the release (from the cache, or downloaded), or None when
    the repository has no such file.

    Raises:
        HubCheckpointError: The file is neither cached nor downloadable, or no such
            repository or revision.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    where = f'{repo_id}' + (f'@{revision}' if revision else '')
    try:
        return hf_hub_download(repo_id, filename, revision=revision)
    except LocalEntryNotFoundError as err:
        raise HubCheckpointError(
            f'hf-hub:{where}: {filename} is not in the Hugging Face cache and cannot be '
            f'downloaded ({type(err).__name__}). {_how_to_get(repo_id, revision)}') from err
    except EntryNotFoundError:
        return None  # the repository (reachable) has no such file
    except RevisionNotFoundError as err:
        raise HubCheckpointError(f'hf-hub:{where}: the repository has no revision '
                                 f'{revision!r}: pick a branch, tag or commit it has.') from err
    except RepositoryNotFoundError as err:
        raise HubCheckpointError(
            f'hf-hub:{where}: no such repository on the hub (or it is private: set '
            'HF_TOKEN). The authors\' releases are hf-hub:sinahmr/locatvit_tiny and '
            'hf-hub:sinahmr/locatvit_base.') from err


def read_weights(path: str, map_location: Union[str, torch.device, None] = 'cpu'
                 ) -> Dict[str, Tensor]:
    """A release's weight file: safetensors without any pickle, a ``.bin`` through the safe
    loader."""
    device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return dict(load_file(path, device=str(device)))
    from .checkpoint import load_checkpoint
    from .models.ckpt_convert import unwrap_state_dict
    return dict(unwrap_state_dict(load_checkpoint(path, map_location=device)))


def read_release(name: str, map_location: Union[str, torch.device, None] = 'cpu') -> Release:
    """Reads ``hf-hub:<repo>[@<revision>]``: its ``config.json`` and its weights as published.

    Raises:
        ValueError: A malformed name.
        HubCheckpointError: The release cannot be read (see :func:`_download`).
    """
    repo_id, revision = parse_hub_name(name)
    config_path = _download(repo_id, 'config.json', revision)
    if config_path is None:
        raise HubCheckpointError(
            f'{name}: the repository has no config.json, so the architecture of its weights '
            'cannot be checked: it is not a release written by PyTorchModelHubMixin.')
    with open(config_path) as f:
        config = json.load(f)
    not_cached = None
    for filename in WEIGHT_FILES:
        try:
            path = _download(repo_id, filename, revision)
        except HubCheckpointError as err:  # offline: maybe cached under the other name
            not_cached = not_cached or err
            continue
        if path is not None:
            return Release(name, read_weights(path, map_location), config, osp.basename(path))
    raise not_cached or HubCheckpointError(
        f'{name}: the repository has none of {", ".join(WEIGHT_FILES)}.')


def release_architecture(config: Mapping[str, Any]) -> Dict[str, Any]:
    """What a release's ``config.json`` says about the model, in the terms of the checks.

    The mixin writes the constructor's keyword arguments; arguments it leaves out have the
    defaults of the authors' class (timm's ``VisionTransformer`` plus ``gaug=True``,
    ``prr=True``, ``no_pos_emb=False``). A timm-format config (``architecture`` naming one of
    the authors' models, ``model_args``) is read as well.
    """
    kwargs = dict(_VARIANTS.get(config.get('architecture'), {}))
    kwargs.update(config.get('model_args') or {})
    kwargs.update(config)

    def arg(key: str, default: Any) -> Any:
        value = kwargs.get(key)
        return default if value is None else value

    width = int(arg('embed_dim', 768))
    pos_embed = not arg('no_pos_emb', False) and arg('pos_embed', 'learn') != 'none'
    return {
        'width': width,
        'depth': int(arg('depth', 12)),
        'heads': int(arg('num_heads', 12)),
        'patch size': int(arg('patch_size', 16)),
        'input channels': int(arg('in_chans', 3)),
        'MLP width': int(width * float(arg('mlp_ratio', 4.0))),
        'GAug': bool(arg('gaug', True)),
        'PRR': bool(arg('prr', True)),
        'position embedding': bool(pos_embed),
        'class token': bool(arg('class_token', True)),
        'register tokens': int(arg('reg_tokens', 0)),
        'pooling': str(arg('global_pool', 'token')),
    }


def backbone_architecture(backbone: torch.nn.Module) -> Dict[str, Any]:
    """The same facts as :func:`release_architecture`, read from a built ``LocAtViT``."""
    with_gaug = [getattr(layer.attn, 'gaug', None) is not None for layer in backbone.layers]
    gaug = all(with_gaug) if all(with_gaug) or not any(with_gaug) else \
        f'in {sum(with_gaug)} of {len(with_gaug)} blocks'
    return {
        'width': backbone.embed_dims,
        'depth': backbone.num_layers,
        'heads': backbone.num_heads,
        'patch size': backbone.patch_size,
        'input channels': backbone.patch_embed.projection.in_channels,
        'MLP width': backbone.arch_settings['feedforward_channels'],
        'GAug': gaug,
        'PRR': bool(backbone.with_prr),
        'position embedding': backbone.pos_embed is not None,
        'class token': bool(backbone.with_cls_token),
        'register tokens': backbone.num_register_tokens,
        'pooling': _POOLED_OUT_TYPES.get(backbone.out_type),
    }


def _arch_hint(release: Mapping[str, Any]) -> str:
    return (f"arch=dict(embed_dims={release['width']}, num_layers={release['depth']}, "
            f"num_heads={release['heads']}, feedforward_channels={release['MLP width']}), "
            f"patch_size={release['patch size']}, gaug={release['GAug']}, "
            f"prr={release['PRR']}, with_pos_embed={release['position embedding']}, "
            f"num_register_tokens={release['register tokens']}")


def check_release_fits(backbone: torch.nn.Module,
                       local_metadata: Optional[Mapping[str, Any]]) -> None:
    """Compares a hub release's architecture (in the backbone's ``_metadata`` entry, put there
    by the ``hf-hub:`` scheme) with ``backbone``; nothing to do for other checkpoints.

    PRR and the pooling are compared only for backbones with pooled outputs: dense features
    never pass through them, so a segmentation backbone may be built either way.

    Raises:
        ReleaseMismatchError: Naming every fact that differs and what to do.
    """
    entry = (local_metadata or {}).get(RELEASE_KEY)
    if entry is None:
        return
    release, name = entry['architecture'], entry['name']
    model = backbone_architecture(backbone)
    pooled = model['pooling'] is not None
    differences = [
        f'{fact} {release[fact]} (release) vs {model[fact]} (model)' for fact in release
        if release[fact] != model[fact] and (pooled or fact not in _POOLED_ONLY)
    ]
    if differences:
        raise ReleaseMismatchError(
            f'{name} (its config.json) is another architecture than the LocAtViT being built: '
            f'{"; ".join(differences)}. Build the backbone the release describes '
            f'({_arch_hint(release)}). To start a different model from these weights, convert '
            f'them to a file (tools/model_converters/locat_timm2mm.py {name} OUT.pth) and load '
            "that with init_cfg=dict(type='Pretrained', checkpoint='OUT.pth', strict=False).")


def load_from_hf_hub(filename: str,
                        map_location: Union[str, torch.device, None] = None) -> dict:
    """mmengine's ``CheckpointLoader`` scheme for ``hf-hub:``: a release as an mmengine
    checkpoint, ``{'state_dict': ..., 'meta': ...}``, in this project's classifier layout.

    The state dict's ``_metadata`` carries the release's architecture for the backbone
    (:func:`check_release_fits`); ``meta['hf_hub']`` names the release and holds its config.
    """
    from .models.ckpt_convert import convert_timm_classifier
    release = read_release(filename, 'cpu' if map_location is None else map_location)
    state_dict = convert_timm_classifier(release.state_dict)
    state_dict._metadata = OrderedDict({
        BACKBONE: {RELEASE_KEY: dict(name=filename,
                                     architecture=release_architecture(release.config))}
    })
    meta = dict(hf_hub=dict(name=filename, weights_file=release.weights_file,
                            config=release.config))
    return {'state_dict': state_dict, 'meta': meta}


def select_metadata(state_dict: Mapping[str, Tensor], prefix: str) -> 'OrderedDict[str, dict]':
    """A state dict's ``_metadata`` for the module at ``prefix`` (e.g. ``'backbone.'``) and
    below, re-keyed as if that module were the root (as torch's
    ``consume_prefix_in_state_dict_if_present`` does)."""
    metadata = getattr(state_dict, '_metadata', None) or {}
    root = prefix[:-1] if prefix.endswith('.') else prefix
    if not root:
        return OrderedDict(metadata)
    return OrderedDict((key[len(root):].lstrip('.'), value) for key, value in metadata.items()
                       if key == root or key.startswith(root + '.'))


def register_scheme() -> None:
    """Makes ``hf-hub:`` a scheme of mmengine's ``CheckpointLoader``. Safe to call twice."""
    from mmengine.runner.checkpoint import CheckpointLoader
    if HUB_PREFIX not in CheckpointLoader._schemes:
        CheckpointLoader.register_scheme(HUB_PREFIX, load_from_hf_hub)
