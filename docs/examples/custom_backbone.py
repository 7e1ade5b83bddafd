"""A backbone of your own: a tiny CNN registered in detectron2's ``BACKBONE_REGISTRY``.

Select it with ``MODEL.BACKBONE.NAME: TinyConvBackbone`` (custom_backbone.yaml). Mask2Former's
pixel decoder reads the features named in ``MODEL.SEM_SEG_HEAD.IN_FEATURES`` (``res2`` .. ``res5``,
strides 4 to 32, in every recipe) and takes their channels and strides from ``output_shape()``.
"""

from typing import Dict

from detectron2.config import CfgNode
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn
from torch.nn import functional as F


def conv_gn_relu(in_channels: int, out_channels: int) -> Conv2d:
    """3x3 convolution with stride 2, GroupNorm and ReLU: halves the resolution."""
    norm = nn.GroupNorm(8, out_channels)
    return Conv2d(in_channels, out_channels, 3, stride=2, padding=1, norm=norm, activation=F.relu)


@BACKBONE_REGISTRY.register()
class TinyConvBackbone(Backbone):
    """A stem at stride 2, then one strided conv per stage.

    ``forward``: image [B, 3, H, W] -> ``res2`` [B, 32, H/4, W/4], ``res3`` [B, 64, H/8, W/8],
    ``res4`` [B, 128, H/16, W/16], ``res5`` [B, 256, H/32, W/32].
    """

    widths = (32, 64, 128, 256)

    def __init__(self, cfg: CfgNode, input_shape: ShapeSpec):
        # detectron2's build_backbone calls the registered object with (cfg, input_shape).
        super().__init__()
        self.stem = conv_gn_relu(input_shape.channels, 16)
        channels = [16, *self.widths]
        self.stages = nn.ModuleDict(
            {f"res{i + 2}": conv_gn_relu(channels[i], channels[i + 1]) for i in range(4)}
        )

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        features = {}
        x = self.stem(x)  # [B, 16, H/2, W/2]
        for name, stage in self.stages.items():
            x = stage(x)
            features[name] = x
        return features

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=width, stride=4 * 2**i)
            for i, (name, width) in enumerate(zip(self.stages, self.widths))
        }
