"""Decode heads of the paper's segmentation protocols."""
from typing import Sequence, Tuple, Union

from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class LinearSegHead(BaseDecodeHead):
    """The dense-prediction probe of LocAtViT's linear protocol.

    One feature map (by default the last block's, taken before the backbone's final norm)
    goes through a 1x1 conv to ``channels`` (512 in the paper), GroupNorm with a single group
    (a LayerNorm over channels and positions that does not depend on the batch, so the probe
    behaves the same at batch 1 and 32), GELU, and the 1x1 classifier ``conv_seg``. The
    backbone stays frozen, so the score measures how much local information its patch
    features already hold.

    Shapes: ``inputs[in_index]`` (B, in_channels, H, W) -> logits (B, num_classes, H, W), at
    the backbone's stride (16); the segmentor upsamples them to the image.

    Args:
        in_channels (int): Channels of the selected feature map (the backbone width).
        channels (int): Width of the hidden 1x1 conv.
        in_index (int): Which backbone output to read; -1 is the last (with
            ``out_indices=(11,)`` the only one).
        dropout_ratio (float): Dropout before the classifier; the paper's probe has none.
        norm_cfg (dict): Norm after the hidden conv; one-group GroupNorm as in the paper.
        act_cfg (dict): Activation after the norm.
        **kwargs: ``num_classes``, ``loss_decode``, ``align_corners`` ... of
            ``BaseDecodeHead``.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int = 512,
                 in_index: int = -1,
                 dropout_ratio: float = 0.,
                 norm_cfg: dict = dict(type='GN', num_groups=1, requires_grad=True),
                 act_cfg: dict = dict(type='GELU'),
                 **kwargs) -> None:
        super().__init__(
            in_channels,
            channels,
            in_index=in_index,
            dropout_ratio=dropout_ratio,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            **kwargs)
        self.proj = ConvModule(
            self.in_channels,
            self.channels,
            kernel_size=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def forward(self, inputs: Union[Sequence[Tensor], Tuple[Tensor, ...]]) -> Tensor:
        """Backbone outputs -> logits (B, num_classes, H, W) of the selected map."""
        return self.cls_seg(self.proj(self._transform_inputs(inputs)))
