"""Layer-wise learning-rate decay for segmentors whose backbone is a LocAtViT."""
import copy
from functools import partial
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

# Parameters that get no weight decay unless ``paramwise_cfg`` says otherwise: the position
# embedding and class token (3-D, so ``flat_decay_mult`` misses them).
NO_DECAY_KEYS = ('pos_embed', 'cls_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LocAtLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """Layer-wise lr decay for an MMSegmentation segmentor with a LocAtViT (or ViT) backbone.

    mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the model for
    ``get_layer_depth``, which a segmentor (``EncoderDecoder``) lacks, and mmseg's
    ``LayerDecayOptimizerConstructor`` accepts only ConvNeXt/BEiT/MAE backbones. This one
    takes the depth of ``backbone.*`` parameters from ``model.backbone.get_layer_depth(name,
    'backbone.')`` (0 for the embeddings, i + 1 for block i) and gives the neck and heads the
    last depth, then reuses mmpretrain's grouping: a parameter at depth ``d`` of ``D`` gets
    ``lr = base_lr * layer_decay_rate ** (D - 1 - d)``, so heads train at ``base_lr``.

    ``paramwise_cfg`` keys are mmpretrain's (``layer_decay_rate``, ``flat_decay_mult``,
    ``norm_decay_mult``, ``bias_decay_mult``, ``custom_keys`` with ``decay_mult``), with two
    defaults for ViTs: ``flat_decay_mult=0.`` (no weight decay on 1-D parameters: every norm
    weight and bias) and ``custom_keys`` entries with ``decay_mult=0.`` for ``pos_embed`` and
    ``cls_token``. Keys the config gives win over these defaults.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
            constructor='LocAtLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.65))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        # Plain dicts: a ConfigDict would store a copy of what setdefault hands back.
        paramwise_cfg = dict(copy.deepcopy(paramwise_cfg or {}))
        paramwise_cfg.setdefault('flat_decay_mult', 0.)
        custom_keys = dict(paramwise_cfg.get('custom_keys', {}))
        for key in NO_DECAY_KEYS:
            custom_keys.setdefault(key, dict(decay_mult=0.))
        paramwise_cfg['custom_keys'] = custom_keys
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Adds ``module``'s parameters to ``params``, one group per parameter.

        Called on the whole segmentor (``prefix=''``), it derives ``get_layer_depth`` from the
        backbone; mmpretrain's recursion passes it down to the children.
        """
        if get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise NotImplementedError(
                    f'{type(self).__name__} needs a model with a `backbone` that has '
                    f'`get_layer_depth` (such as LocAtViT); got {type(module).__name__} with '
                    f'backbone {type(backbone).__name__}.')
            # Names outside ``backbone.`` (neck, heads) get the last depth from the backbone.
            get_layer_depth = partial(backbone.get_layer_depth, prefix='backbone.')
        super().add_params(params, module, prefix, get_layer_depth=get_layer_depth, **kwargs)
