"""Registries of locat_mm, and registration into MMPretrain's and MMSegmentation's.

``locat_mm.registry.MODELS`` is a child of mmengine's root registry with scope ``locat_mm``, so
``type='locat_mm.LocAtViT'`` builds from any OpenMMLab toolbox's config (MMDetection's too).
The toolboxes' own registries get the same classes under their plain names when the toolbox
is installed, so ``type='LocAtViT'`` works in MMPretrain and MMSegmentation configs.

Registration is lazy: ``import locat_mm`` adds this project's modules to the import locations
of the toolboxes' registries (:func:`register_lazily`), and mmengine imports them the first
time it looks a name up there, as it does with the toolboxes' own modules.
"""
import importlib
import importlib.util
from typing import Iterable

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='locat_mm', locations=['locat_mm.models'])

# Where each toolbox's registries find this project's modules: (registry, module) pairs.
TOOLBOX_LOCATIONS = {
    'mmpretrain': (('MODELS', 'locat_mm.models'), ('HOOKS', 'locat_mm.engine'),
                   ('TRANSFORMS', 'locat_mm.engine')),
    'mmseg': (('MODELS', 'locat_mm.models'), ('HOOKS', 'locat_mm.engine'),
              ('TRANSFORMS', 'locat_mm.engine'),
              ('MODELS', 'locat_mm.seg'), ('DATASETS', 'locat_mm.seg'),
              ('OPTIM_WRAPPER_CONSTRUCTORS', 'locat_mm.seg')),
}


def toolbox_available(name: str) -> bool:
    """True when the OpenMMLab toolbox package ``name`` (e.g. ``'mmseg'``) is installed."""
    return importlib.util.find_spec(name) is not None


def register_everywhere(cls: type) -> type:
    """Registers a model class in locat_mm's, MMPretrain's and MMSegmentation's MODELS.

    Runs when the class's module is imported: the toolboxes are present then (that is how
    the module got imported from their registries' locations).
    """
    MODELS.register_module(module=cls)
    for toolbox in TOOLBOX_LOCATIONS:
        if toolbox_available(toolbox):
            registry = importlib.import_module(f'{toolbox}.registry')
            registry.MODELS.register_module(module=cls)
    return cls


def register_lazily(registry: Registry, modules: Iterable[str]) -> None:
    """Makes ``registry`` import ``modules`` when it first looks a name up.

    A registry that has already imported its locations imports them now instead. Uses
    mmengine's ``Registry._locations``/``_imported`` (mmengine 0.10), which its
    ``import_from_location`` reads.
    """
    for module in modules:
        if registry._imported:
            importlib.import_module(module)
        elif module not in registry._locations:
            registry._locations.append(module)


def register_in_toolboxes() -> None:
    """Adds this project's modules to the registries of every installed toolbox, and the
    hooks and transforms to mmengine's root registries (configs without a toolbox scope).

    A toolbox registry's lookup reads its parents' names without importing their locations,
    so each registry gets the modules it may be asked for.
    """
    from mmengine.registry import HOOKS, TRANSFORMS
    for registry in (HOOKS, TRANSFORMS):
        register_lazily(registry, ['locat_mm.engine'])
    for toolbox, pairs in TOOLBOX_LOCATIONS.items():
        if not toolbox_available(toolbox):
            continue
        registries = importlib.import_module(f'{toolbox}.registry')
        for name, module in pairs:
            register_lazily(getattr(registries, name), [module])


def register_model_index() -> None:
    """Makes mmpretrain's ``list_models``/``get_model``/``inference_model`` know this project's
    classification configs by name (``configs/metafile.yml``, read through
    ``locat_mm/.mim/model-index.yml`` as mim reads it). Safe to call twice."""
    import os.path as osp
    from mmpretrain.apis import ModelHub
    root = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')
    index = osp.join(root, 'model-index.yml')
    if not osp.isfile(index) or ModelHub.has('locat-vit-b-p16_in1k'):
        return
    ModelHub.register_model_index(index, config_prefix=root)
