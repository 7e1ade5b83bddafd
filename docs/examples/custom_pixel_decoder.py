"""A pixel decoder of your own, registered in Mask2Former's ``PIXEL_DECODER_REGISTRY``.

Select it with ``MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME: LateralSumPixelDecoder``
(custom_pixel_decoder.yaml). ``MaskFormerHead`` builds it with ``(cfg, input_shape)`` and calls
``forward_features``; the transformer decoder attends to the 3 multi-scale features it returns.
"""

from typing import Dict, List, Optional, Tuple

from detectron2.config import CfgNode, configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from torch import Tensor, nn
from torch.nn import functional as F

from mask2former.modeling.layers import NUM_MULTI_SCALE_FEATURES
from mask2former.modeling.pixel_decoder import PIXEL_DECODER_REGISTRY, pixel_decoder_args


@PIXEL_DECODER_REGISTRY.register()
class LateralSumPixelDecoder(nn.Module):
    """A light FPN: 1x1 projections of every level, summed top-down with bilinear upsampling.

    ``forward_features(features)`` returns ``mask_features`` [B, mask_dim, H/4, W/4], no encoder
    features (None) and the multi-scale features [B, conv_dim, H_l, W_l] at strides 32, 16, 8.
    """

    @configurable
    def __init__(
        self, input_shape: Dict[str, ShapeSpec], *, conv_dim: int, mask_dim: int, norm: str = ""
    ):
        super().__init__()
        # Coarse to fine: res5 .. res2.
        self.in_features = sorted(input_shape, key=lambda k: -input_shape[k].stride)
        self.laterals = nn.ModuleList(
            Conv2d(input_shape[k].channels, conv_dim, 1, norm=get_norm(norm, conv_dim))
            for k in self.in_features
        )
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Dict:
        # input_shape (the IN_FEATURES), conv_dim, mask_dim and norm of MODEL.SEM_SEG_HEAD.
        return pixel_decoder_args(cfg, input_shape)

    def forward_features(
        self, features: Dict[str, Tensor]
    ) -> Tuple[Tensor, Optional[Tensor], List[Tensor]]:
        outputs = []
        for name, lateral in zip(self.in_features, self.laterals):
            x = lateral(features[name])  # [B, conv_dim, H_l, W_l]
            if outputs:
                coarser = outputs[-1]
                x = x + F.interpolate(coarser, x.shape[-2:], mode="bilinear", align_corners=False)
            outputs.append(x)
        return self.mask_features(outputs[-1]), None, outputs[:NUM_MULTI_SCALE_FEATURES]
