"""Registry of pixel decoders (unlike the official code, not mixed into SEM_SEG_HEADS_REGISTRY)."""

from typing import Dict

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry
from torch import nn

PIXEL_DECODER_REGISTRY = Registry("PIXEL_DECODER")
PIXEL_DECODER_REGISTRY.__doc__ = """
Registry for pixel decoders, which upsample backbone features into per-pixel mask features and
multi-scale features for the transformer decoder.

The registered object is called with `cfg, input_shape` and must implement
`forward_features(features) -> (mask_features, transformer_encoder_features, multi_scale_features)`.
"""


def build_pixel_decoder(cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build the pixel decoder named by ``cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME``."""
    name = cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME
    if name not in PIXEL_DECODER_REGISTRY:
        registered = sorted(k for k, _ in PIXEL_DECODER_REGISTRY)
        raise KeyError(
            f"Unknown MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME {name!r}; "
            f"registered pixel decoders: {registered}"
        )
    model = PIXEL_DECODER_REGISTRY.get(name)(cfg, input_shape)
    if not callable(getattr(model, "forward_features", None)):
        raise TypeError(f"Pixel decoder {name!r} must implement forward_features(features)")
    return model
