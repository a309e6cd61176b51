"""What the plain-token backbones (LocAtViT, LocAtRoPEViT, LocAtJumbo) share: the block loop,
the output formats, the layer-wise lr-decay depths and freezing, as mmpretrain's
``VisionTransformer`` defines them.

Token layout: ``num_extra_tokens`` prefix tokens (the first ``num_class_tokens`` of them class
tokens), then the patches row-major.
"""
from typing import List, Tuple, Union

import torch.nn as nn
from torch import Tensor


class TokenOutputs:
    """Mixin of an ``nn.Module`` with ``embed``, ``layers``, ``num_layers``, ``out_indices``,
    ``out_type``, ``final_norm``, ``num_extra_tokens``, ``with_prr``, ``prr`` and
    ``frozen_stages`` (and ``ln2`` for ``out_type='avg_featmap'``); ``embed``, ``run_layer``,
    ``apply_final_norm`` and ``pool_class_tokens`` are the hooks a family overrides."""
    # Top-level names of the parameters before the first block (layer-wise lr-decay depth 0).
    EMBEDDING_KEYS: Tuple[str, ...] = ('cls_token', 'pos_embed', 'patch_embed')
    # Class tokens pooled by ``out_type='cls_token'`` (the first prefix tokens).
    num_class_tokens = 1
    # Modules between the embeddings and the first block, frozen with the embeddings.
    PRE_BLOCK_KEYS: Tuple[str, ...] = ('drop_after_pos', 'pre_norm')
    # mmseg's options: the embedding as a first output; [featmap, class token] outputs;
    # LayerNorms kept in eval mode while training.
    out_origin = False
    output_cls_token = False
    norm_eval = False

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Images (B, C_in, H, W) -> tokens (B, P + H'*W', C) and the grid (H', W')."""
        raise NotImplementedError

    def run_layer(self, layer: nn.Module, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """One block on the tokens."""
        return layer(x, grid, self.num_extra_tokens)

    def apply_final_norm(self, x: Tensor) -> Tensor:
        """The final norm on all tokens (B, P + H*W, C)."""
        return self.ln1(x)

    def pool_class_tokens(self, tokens: Tensor) -> Tensor:
        """(B, num_class_tokens, C) class tokens -> the classification feature (B, C)."""
        return tokens[:, 0]

    def forward(self, x: Tensor) -> Tuple[Union[Tensor, List[Tensor]], ...]:
        """Images (B, C_in, H, W) -> one output per ``out_indices`` entry (see ``out_type``).

        With ``out_origin`` the embedding comes first; with ``output_cls_token`` every output
        is ``[featmap, class token]``.
        """
        x, grid = self.embed(x)
        outs = [self._format_output(x, grid, is_last=False)] if self.out_origin else []
        last = self.num_layers - 1
        for i, layer in enumerate(self.layers):
            x = self.run_layer(layer, x, grid)
            if i == last and self.final_norm:
                x = self.apply_final_norm(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, grid, is_last=i == last))
        return tuple(outs)

    def _format_output(self, x: Tensor, grid: Tuple[int, int],
                       is_last: bool) -> Union[Tensor, List[Tensor]]:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'featmap':
            patches = x[:, self.num_extra_tokens:]
            featmap = patches.transpose(1, 2).reshape(x.shape[0], -1, *grid).contiguous()
            return [featmap, x[:, 0]] if self.output_cls_token else featmap
        # PRR refines only the tokens pooled below (its rows are independent; every token is
        # a key): the class token alone costs 1/L of refining every token.
        cls_only = self.out_type == 'cls_token'
        pooled = slice(0, self.num_class_tokens) if cls_only else \
            slice(self.num_extra_tokens, None)
        tokens = self.prr(x, pooled) if is_last and self.with_prr else x[:, pooled]
        return self.pool_class_tokens(tokens) if cls_only else self.ln2(tokens.mean(dim=1))

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer-wise lr-decay depth of a parameter, as mmpretrain's ViT counts it.

        Returns:
            tuple[int, int]: depth (0 for embeddings, i + 1 for block i, ``num_layers + 1``
            for everything else) and the number of depths, ``num_layers + 2``.
        """
        num_depths = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_depths - 1, num_depths
        name = param_name[len(prefix):]
        if name.split('.')[0] in self.EMBEDDING_KEYS:
            return 0, num_depths
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, num_depths
        return num_depths - 1, num_depths

    def _freeze_stages(self) -> None:
        """Eval mode and no gradients for the embeddings (``EMBEDDING_KEYS``, then
        ``PRE_BLOCK_KEYS``), the first ``frozen_stages`` blocks and, with every block frozen,
        every module after the blocks (final norms; Jumbo's shared MLP), as mmpretrain's ViT."""
        before = self.EMBEDDING_KEYS + self.PRE_BLOCK_KEYS
        frozen = [getattr(self, name, None) for name in before]
        frozen += list(self.layers[:self.frozen_stages])
        if self.frozen_stages >= self.num_layers:
            frozen += [module for name, module in self.named_children()
                       if name not in before + ('layers', )]
        for item in frozen:
            if isinstance(item, nn.Parameter):
                item.requires_grad = False
            elif item is not None:
                item.eval()
                for param in item.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> nn.Module:
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.eval()
        return self
